import pytest

from qmoe import energy
from qmoe.energy import EnergyConfig, EnergyMeter
from qmoe.io import ConfigError


def test_unit_conversions_are_exact():
    assert energy.kwh_to_joules(1.0) == 3.6e6
    assert energy.kwh_to_joules(2.5e-6) == pytest.approx(9.0)
    assert energy.joules_to_millijoules(0.25) == 250.0
    assert energy.kwh_to_wh(0.002) == pytest.approx(2.0)
    assert energy.kg_to_grams(3e-6) == pytest.approx(3e-3)


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
    with pytest.raises(RuntimeError, match="CodeCarbon could not start its offline tracker: no /proc"):
        with meter.measure("x"):
            pass


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
