"""Datasets: registry, mirror-first downloads, safe extraction, manifests (docs/architecture.md 1).
Use: `qmoe.datasets.build("esc10", Path("data/raw/esc10"), cfg)` with `cfg` the
`DownloadConfig` of params `download` (qmoe.io.from_section); QMOE_MIRROR is searched before the
network.
"""

from qmoe.datasets.archive import UnsafeArchiveError, extract
from qmoe.datasets.esc import MAJOR_NAMES, SCRAMBLED_NAMES, esc_columns
from qmoe.datasets.fetch import ChecksumError, mirror_dirs
from qmoe.datasets.manifest import COLUMNS, ESC_COLUMNS
from qmoe.datasets.prepare import BUILDERS, build
from qmoe.datasets.registry import (
    SPECS,
    ArchiveSource,
    DatasetError,
    DatasetSpec,
    DownloadConfig,
    SyntheticConfig,
    get_spec,
)

__all__ = [
    "BUILDERS",
    "COLUMNS",
    "ESC_COLUMNS",
    "MAJOR_NAMES",
    "SCRAMBLED_NAMES",
    "SPECS",
    "ArchiveSource",
    "ChecksumError",
    "DatasetError",
    "DatasetSpec",
    "DownloadConfig",
    "SyntheticConfig",
    "UnsafeArchiveError",
    "build",
    "esc_columns",
    "extract",
    "get_spec",
    "mirror_dirs",
]
