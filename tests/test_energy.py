import pytest

from qmoe import energy
from qmoe.energy import EnergyConfig, EnergyMeter
from qmoe.io import ConfigError


def test_unit_conversions_are_exact():
    assert energy.J_PER_KWH == 1000 * 3600  # 1 kWh = 1,000 W x 3,600 s
    assert energy.kwh_to_joules(1.0) == 3.6e6 and energy.kwh_to_joules(0.5) == 1.8e6
    assert energy.joules_to_millijoules(0.25) == 250.0
    assert energy.kwh_to_wh(0.5) == 500.0 and energy.kg_to_grams(0.25) == 250.0
    # the reference's "mJ" (kWh x 1e3) is Wh: 1 Wh = 3,600 J = 3.6e6 mJ
    assert energy.joules_to_millijoules(energy.kwh_to_joules(1e-3)) == 3.6e6
    assert energy.kwh_to_joules(2.5e-6) == pytest.approx(9.0, rel=1e-15)


def test_country_code_is_checked():
    with pytest.raises(ConfigError, match="energy.country_iso_code: 'ie' is not an ISO"):
        EnergyConfig("ie")


def test_measure_reports_energy_in_explicit_units_and_names_the_method():
    with EnergyMeter("IRL") as meter:
        with meter.measure("busy") as r:
            sum(i * i for i in range(200_000))
    assert r.energy_kwh > 0 and r.emissions_kg > 0 and r.duration_s > 0
    assert r.energy_j == pytest.approx(r.energy_kwh * 3.6e6)
    assert r.emissions_g == pytest.approx(r.emissions_kg * 1e3)
    assert r.method.startswith("codecarbon ") and "CPU" in r.method


def test_tracker_failure_is_an_error_not_a_zero(monkeypatch):
    import codecarbon

    class Broken:
        def __init__(self, **kwargs):
            raise OSError("no /proc/cpuinfo")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Broken)
    meter = EnergyMeter("IRL")
    message = "CodeCarbon could not start its offline tracker: no /proc"
    with pytest.raises(RuntimeError, match=message):
        with meter.measure("x"):
            pass


def test_a_tracker_started_in_the_background_measures_and_its_failure_surfaces(monkeypatch):
    with EnergyMeter("IRL").start_soon() as meter:
        with meter.measure("busy") as r:
            sum(i * i for i in range(200_000))
    assert r.energy_kwh > 0 and r.method.startswith("codecarbon ")
    assert meter._tracker is None  # stopped on exit

    import codecarbon

    class Broken:
        def __init__(self, **kwargs):
            raise OSError("no /proc/cpuinfo")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Broken)
    meter = EnergyMeter("IRL").start_soon()
    with pytest.raises(RuntimeError, match="could not start its offline tracker: no /proc"):
        with meter.measure("x"):
            pass
    meter.close()  # a failed background start leaves nothing to stop


def test_task_that_returns_no_data_is_an_error(monkeypatch):
    meter = EnergyMeter("IRL")

    class Fake:
        _hardware = []

        def start_task(self, name):
            pass

        def stop_task(self):
            return None

    meter._tracker, meter.method = Fake(), "fake"
    with pytest.raises(RuntimeError, match="returned no energy for task 'x'"):
        with meter.measure("x"):
            pass


class _Data:
    def __init__(self, energy, emissions=1e-9, duration=0.5):
        self.energy_consumed, self.emissions, self.duration = energy, emissions, duration


class _FakeTracker:
    """Stands in for a started OfflineEmissionsTracker: records task calls, returns `data`."""

    def __init__(self, data):
        self.data, self.calls = data, []

    def start_task(self, name):
        self.calls.append(("start", name))

    def stop_task(self):
        self.calls.append(("stop",))
        return self.data


def _meter_with(tracker) -> EnergyMeter:
    meter = EnergyMeter("IRL")
    meter._tracker, meter.method = tracker, "codecarbon fake"
    return meter


@pytest.mark.parametrize(
    "data, message",
    [
        (_Data(0.0), "zero energy for task 'x'"),
        (_Data(float("nan")), "energy_consumed=nan"),
        (_Data(-1e-6), "energy_consumed=-1e-06"),
        (_Data(None), "energy_consumed=None"),
        (_Data(1e-6, emissions=float("inf")), "emissions=inf"),
    ],
)
def test_readings_that_are_not_measurements_are_refused(data, message):
    meter = _meter_with(_FakeTracker(data))
    with pytest.raises(RuntimeError, match=message):
        with meter.measure("x"):
            pass


def test_reading_fields_come_from_the_task_data_in_explicit_units():
    meter = _meter_with(_FakeTracker(_Data(2e-6, emissions=5e-7, duration=0.25)))
    with meter.measure("block") as r:
        assert r.energy_kwh != r.energy_kwh  # NaN until the block exits
    assert (r.energy_kwh, r.emissions_kg, r.duration_s) == (2e-6, 5e-7, 0.25)
    assert r.energy_j == 2e-6 * 3.6e6 and r.emissions_g == 5e-7 * 1e3
    assert r.method == "codecarbon fake" and r.task == "block"


def test_an_error_inside_the_block_stops_the_task_and_propagates():
    tracker = _FakeTracker(_Data(1e-6))
    meter = _meter_with(tracker)
    with pytest.raises(KeyError, match="inner"):
        with meter.measure("t"):
            raise KeyError("inner")
    assert tracker.calls == [("start", "t"), ("stop",)]


def test_stop_task_failure_names_the_task():
    class Broken(_FakeTracker):
        def stop_task(self):
            raise OSError("psutil gone")

    with pytest.raises(RuntimeError, match="could not stop task 'y': psutil gone"):
        with _meter_with(Broken(None)).measure("y"):
            pass


def _hw(cls_name, **attrs):
    return type(cls_name, (), attrs)()


@pytest.mark.parametrize(
    "hardware, expected",
    [
        (
            [_hw("RAM", _force_ram_power=None), _hw("CPU", _mode="cpu_load", _tdp=8)],
            "codecarbon RAM estimated (size-based power model); "
            "CPU estimated (cpu_load: TDP 8 W scaled by load)",
        ),
        (
            [_hw("CPU", _mode="intel_rapl", _tdp=100), _hw("RAM", _force_ram_power=12)],
            "codecarbon CPU measured (intel_rapl); RAM user-set constant (12 W)",
        ),
        (
            [_hw("CPU", _mode="constant", _tdp=65)],
            "codecarbon CPU estimated (constant: constant share of TDP 65 W)",
        ),
        ([_hw("GPU")], "codecarbon GPU measured (NVML)"),
    ],
)
def test_method_is_read_from_the_tracker_hardware(hardware, expected):
    tracker = type("T", (), {"_hardware": hardware})()
    assert energy.describe_method(tracker) == expected


def test_estimated_methods_never_use_the_words_of_a_measurement():
    from qmoe.report.provenance import MEASURED_ENERGY

    tracker = type(
        "T",
        (),
        {"_hardware": [_hw("RAM", _force_ram_power=None), _hw("CPU", _mode="cpu_load", _tdp=8)]},
    )()
    method = energy.describe_method(tracker).lower()
    assert not any(word in method for word in MEASURED_ENERGY)


def test_tracker_without_hardware_is_an_error():
    with pytest.raises(RuntimeError, match="exposes no hardware"):
        energy.describe_method(type("T", (), {"_hardware": []})())


def test_grid_emissions_follow_codecarbons_offline_country_mix():
    """What the offline tracker multiplies a reading by: recomputing emissions for another
    country needs no new measurement (the train stage does so for kept models)."""
    from codecarbon.input import DataSource

    mix = DataSource().get_global_energy_mix_data()
    for code in ("IRL", "FRA"):
        kg_per_kwh = mix[code]["carbon_intensity"] / 1e3  # g/kWh in CodeCarbon's table
        assert energy.grid_emissions_kg(2.0, code) == pytest.approx(2.0 * kg_per_kwh, rel=1e-9)
    with pytest.raises(ConfigError, match="energy.country_iso_code"):
        energy.grid_emissions_kg(1.0, "ireland")
