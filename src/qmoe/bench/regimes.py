"""How the core is brought into a cache regime before a timed call (the names of regimes and MoE
forms, and the files and columns they name: qmoe.contract.benchmarks).

- `warm`: back-to-back calls; nothing runs between them.
- `after_backbone`: before every timed call (outside its timer) the core writes one byte of every
  cache line of a buffer `benchmark.flush_l2_multiple` times its L2, as the backbone pass that
  precedes a deployed head does (it streams ~20 MB of weights and activations through the core);
  the head then starts from a cold L2. A real backbone pass costs ~28 ms a call: too slow to time
  thousands of heads behind it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Cache(NamedTuple):
    """The pinned core's L2 and its line size, and where they were read."""

    l2_bytes: int
    line_bytes: int
    source: str


def _size(text: str) -> int:
    """'512K' / '1M' / '524288' -> bytes."""
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text[:-1] if scale > 1 else text) * scale


def l2_cache(cpu: int, root: Path = Path("/sys/devices/system/cpu")) -> Cache:
    """The L2 of `cpu` from sysfs (cache/index*/level == 2), else from `lscpu -C` (its ONE-SIZE
    column: one instance, not the total that `lscpu` prints first). Raises RuntimeError where
    neither says."""
    for index in sorted((root / f"cpu{cpu}" / "cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            line = index / "coherency_line_size"
            step = int(line.read_text()) if line.is_file() else 64
            return Cache(_size((index / "size").read_text()), step, str(index / "size"))
        except (OSError, ValueError):
            continue
    try:
        text = subprocess.run(
            ["lscpu", "-B", "-C=LEVEL,ONE-SIZE,COHERENCY-SIZE"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"cpu{cpu}: L2 size not in {root} and lscpu failed: {e}") from None
    for row in text.splitlines()[1:]:
        level, size, step = (row.split() + ["", "", ""])[:3]
        if level == "2" and size.isdigit():
            return Cache(int(size), int(step) if step.isdigit() else 64, "lscpu -C ONE-SIZE")
    raise RuntimeError(f"cpu{cpu}: no level-2 cache in {root} or in lscpu -C")


class Flush:
    """Writes one byte of every cache line of a buffer of `nbytes` (an in-place add: each line is
    read and written back, so it displaces what the core held)."""

    def __init__(self, nbytes: int, line_bytes: int):
        self.nbytes, self.line_bytes = int(nbytes), int(line_bytes)
        self._buffer = np.zeros(self.nbytes, dtype=np.uint8)
        self._lines = self._buffer[:: self.line_bytes]

    def __call__(self) -> None:
        np.add(self._lines, 1, out=self._lines)

    def record(self, cache: Cache) -> dict:
        """run.json / device.json: what `after_backbone` wrote before each call, and why."""
        return {
            "l2_bytes": cache.l2_bytes,
            "l2_source": cache.source,
            "buffer_bytes": self.nbytes,
            "line_bytes": self.line_bytes,
        }
