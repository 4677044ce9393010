"""Energy and emissions with CodeCarbon's offline tracker, in explicit units.

CodeCarbon reports kWh and kg CO2-eq; the reference multiplied them by 1e3 / 1e6 and called them
mJ / µg (reference-method.md 10.3). Here every conversion is a named, tested function. One tracker
per process (its start costs ~1.5 s of hardware probing); each measured block is a task of it.
On a machine without power counters (no RAPL, as on our CI VM) CodeCarbon *estimates* CPU power
from a TDP table and the CPU load, and RAM power from its size: `method` says which was used.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import numbers
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qmoe.io import SetupError, require

log = logging.getLogger(__name__)

# Every energy and mass unit conversion of the package, in one home.
J_PER_KWH = 3.6e6
MJ_PER_J = 1e3
WH_PER_KWH = 1e3
G_PER_KG = 1e3


def kwh_to_joules(kwh: float) -> float:
    return kwh * J_PER_KWH


def joules_to_millijoules(joules: float) -> float:
    return joules * MJ_PER_J


def kwh_to_wh(kwh: float) -> float:
    return kwh * WH_PER_KWH


def kg_to_grams(kg: float) -> float:
    return kg * G_PER_KG


@dataclass(frozen=True)
class EnergyConfig:
    """params.yaml `energy`: the grid whose carbon intensity converts kWh to CO2-eq."""

    country_iso_code: str

    def __post_init__(self) -> None:
        code = self.country_iso_code
        require(
            len(code) == 3 and code.isalpha() and code.isupper(),
            "energy.country_iso_code",
            f"{code!r} is not an ISO 3166 alpha-3 code such as 'IRL'",
        )


def grid_emissions_kg(energy_kwh: float, country_iso_code: str) -> float:
    """kg CO2-eq of `energy_kwh` on the grid of `country_iso_code`, from CodeCarbon's offline
    country energy mix (what its OfflineEmissionsTracker multiplies a reading by): emissions follow
    a country change without measuring the energy again."""
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    EnergyConfig(country_iso_code)  # validates the code
    geo = GeoMetadata(country_iso_code=country_iso_code)
    return float(
        Emissions(DataSource()).get_private_infra_emissions(Energy.from_energy(kWh=energy_kwh), geo)
    )


@dataclass
class EnergyReading:
    """Filled when a `measure` block exits; NaN-free by construction (failures raise)."""

    task: str
    energy_kwh: float = float("nan")
    emissions_kg: float = float("nan")
    duration_s: float = float("nan")
    method: str = ""

    @property
    def energy_j(self) -> float:
        return kwh_to_joules(self.energy_kwh)

    @property
    def emissions_g(self) -> float:
        return kg_to_grams(self.emissions_kg)


MEASURED_CPU_MODES = ("intel_rapl", "intel_power_gadget", "windows_emi", "apple_powermetrics")


def _describe_cpu(hw: Any) -> str:
    mode, tdp = getattr(hw, "_mode", None), getattr(hw, "_tdp", "?")
    if mode in MEASURED_CPU_MODES:
        return f"CPU measured ({mode})"
    if mode == "cpu_load":
        return f"CPU estimated (cpu_load: TDP {tdp} W scaled by load)"
    return f"CPU estimated ({mode or 'unknown mode'}: constant share of TDP {tdp} W)"


def describe_method(tracker: Any) -> str:
    """How CodeCarbon obtains power on this machine, read from its hardware objects (its
    `_hardware` list: CPU `_mode`, RAM `_force_ram_power`), never assumed. Measured sources keep
    the words rapl / powermetrics / nvml that qmoe.report.provenance looks for; estimates never
    do."""
    parts = []
    for hw in getattr(tracker, "_hardware", []):
        name = type(hw).__name__
        if name == "CPU":
            parts.append(_describe_cpu(hw))
        elif name == "RAM":
            forced = getattr(hw, "_force_ram_power", None)
            parts.append(
                f"RAM user-set constant ({forced} W)"
                if forced is not None
                else "RAM estimated (size-based power model)"
            )
        elif name == "GPU":
            parts.append("GPU measured (NVML)")
        elif name == "AppleSiliconChip":
            parts.append("Apple chip measured (powermetrics)")
        else:
            parts.append(f"{name} (unknown source)")
    if not parts:
        raise SetupError("CodeCarbon tracker exposes no hardware to measure")
    return "codecarbon " + "; ".join(parts)


def check_reading(task: str, energy_kwh: Any, emissions_kg: Any, duration_s: Any) -> None:
    """Refuse what is not a measurement: missing, non-finite, negative or zero energy (a block that
    took time cannot cost nothing; a zero here means CodeCarbon did not measure)."""
    values = {"energy_consumed": energy_kwh, "emissions": emissions_kg, "duration": duration_s}
    for name, value in values.items():
        if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise SetupError(f"CodeCarbon returned {name}={value!r} for task {task!r}")
    if float(energy_kwh) == 0.0:
        raise SetupError(
            f"CodeCarbon returned zero energy for task {task!r} "
            f"({float(duration_s):.3g} s): not a measurement"
        )


class EnergyMeter:
    """One CodeCarbon OfflineEmissionsTracker for the process; `measure(task)` wraps one block."""

    def __init__(self, country_iso_code: str):
        EnergyConfig(country_iso_code)  # validates the code
        self.country_iso_code = country_iso_code
        self._tracker: Any = None
        self._starting: concurrent.futures.Future | None = None
        self.method = ""

    def start_soon(self) -> EnergyMeter:
        """Start the tracker in a background thread (its hardware probing takes ~1.4 s here) while
        the caller reads its inputs; the first `measure` waits for it and raises its error."""
        if self._tracker is None and self._starting is None:
            pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="codecarbon-start")
            self._starting = pool.submit(self._new_tracker)
            pool.shutdown(wait=False)
        return self

    def _start(self) -> Any:
        if self._tracker is None:
            starting, self._starting = self._starting, None
            self._tracker, self.method = (
                starting.result() if starting is not None else self._new_tracker()
            )
        return self._tracker

    def _new_tracker(self) -> tuple[Any, str]:
        """A started OfflineEmissionsTracker and the description of its method."""
        os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
        try:
            from codecarbon import OfflineEmissionsTracker

            tracker = OfflineEmissionsTracker(
                country_iso_code=self.country_iso_code, save_to_file=False, log_level="error"
            )
            tracker.start()
        except Exception as e:
            raise SetupError(f"CodeCarbon could not start its offline tracker: {e}") from e
        try:
            return tracker, describe_method(tracker)
        except Exception:
            with contextlib.suppress(Exception):
                tracker.stop()
            raise

    @contextlib.contextmanager
    def measure(self, task: str) -> Iterator[EnergyReading]:
        """Energy of the `with` block as one CodeCarbon task; the reading is filled on exit. If the
        block raises, the task is stopped and the block's error propagates (nothing recorded)."""
        tracker = self._start()
        reading = EnergyReading(task)
        try:
            tracker.start_task(task)
        except Exception as e:
            raise SetupError(f"CodeCarbon could not start task {task!r}: {e}") from e
        try:
            yield reading
        except BaseException:
            with contextlib.suppress(Exception):
                tracker.stop_task()
            raise
        try:
            data = tracker.stop_task()
        except Exception as e:
            raise SetupError(f"CodeCarbon could not stop task {task!r}: {e}") from e
        if data is None:
            raise SetupError(f"CodeCarbon returned no energy for task {task!r}")
        check_reading(task, data.energy_consumed, data.emissions, data.duration)
        reading.energy_kwh = float(data.energy_consumed)
        reading.emissions_kg = float(data.emissions)
        reading.duration_s = float(data.duration)
        reading.method = self.method

    def close(self) -> None:
        if self._starting is not None:  # started in the background, never used: stop it too
            starting, self._starting = self._starting, None
            if starting.exception() is None:
                self._tracker = starting.result()[0]
        if self._tracker is not None:
            try:
                self._tracker.stop()
            finally:
                self._tracker = None

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
