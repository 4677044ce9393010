"""Dataset registry: where each dataset comes from, its licence, and what a complete copy holds.

Pure data; nothing here touches the network or the disk (fetch.py and the builders do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from qmoe.io import UserError, choose, require


class DatasetError(UserError, RuntimeError):
    """Bad or incomplete data (missing files, checksum mismatch, undecodable clip, no source)."""


@dataclass(frozen=True)
class ArchiveSource:
    """One downloadable archive; checksums are None where no trusted value is known."""

    url: str
    archive_name: str  # the file name looked for in QMOE_MIRROR and saved on download
    sha256: str | None = None
    md5: str | None = None  # e.g. the value Zenodo publishes


class ClipFormat(NamedTuple):
    """The exact format of every clip, where a dataset defines it."""

    sample_rate: int
    channels: int
    frames: int


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    licence: str
    archive: ArchiveSource | None = None  # None: user folder or generated
    mirror_folder: str | None = None  # folder name looked for in QMOE_MIRROR
    user_supplied: bool = False  # read from <download.user_data>/<name> (a DVC dependency)
    provenance: dict[str, str] = field(default_factory=dict)  # commit / record / paper
    expected_files: int | None = None  # checked on every build where known
    num_folds: int = 0  # official folds; 0 = none
    folds: str = "none: the corrected protocol makes grouped stratified folds by source_id"
    meta_digest: str | None = None  # of the official metadata's rows (esc.meta_digest)
    clip_format: ClipFormat | None = None  # checked on every clip (and silence refused) if set
    source_id: str = "one per file (no grouping)"  # what the manifest's source_id stands for


ESC50_COMMIT = "33c8ce9eb2cf0b1c2f8bcf322eb349b6be34dbb6"
# sha256 over the sorted rows of the official esc50.csv (qmoe.datasets.esc.meta_digest), from the
# verified copy described in ../shared/datasets/esc50-meta/PROVENANCE.md. ESC-50 publishes no
# per-file checksums, so a mirror folder is held to its metadata and the clips' format.
ESC50_META_DIGEST = "0160a6ccf1020c279e5c7a8dd089807c31a92ae803c9ccea15e0b0d862efff5c"
ESC10_COMMIT = "553c8f1743b9dba6b282e1323c3ca8fa76923448"
US8K_RECORD = "1203745"

SPECS: dict[str, DatasetSpec] = {
    "esc50": DatasetSpec(
        name="esc50",
        description="ESC-50: 2000 5-s environmental clips, 50 classes, 5 official folds",
        licence="CC BY-NC 3.0 (ESC-10 subset CC BY 3.0); per-clip Freesound attributions upstream",
        # The commit soundata pins (PR #209, 2025) so the GitHub archive is stable; the md5 is
        # soundata's. The archive's sha256 is not known offline: it is recorded in dataset.json.
        archive=ArchiveSource(
            url=f"https://github.com/karolpiczak/ESC-50/archive/{ESC50_COMMIT}.zip",
            archive_name=f"ESC-50-{ESC50_COMMIT}.zip",
            md5="071b44018315e034b2c6e8064543d19c",
        ),
        mirror_folder="esc50",
        provenance={"repository": "https://github.com/karolpiczak/ESC-50", "commit": ESC50_COMMIT},
        expected_files=2000,
        num_folds=5,
        folds="official (meta/esc50.csv)",
        source_id="ESC-50 src_file: the Freesound clip a take was cut from",
        meta_digest=ESC50_META_DIGEST,
        clip_format=ClipFormat(sample_rate=44100, channels=1, frames=220500),  # 5.0 s mono
    ),
    "esc10": DatasetSpec(
        name="esc10",
        description="ESC-10: the 400 OGG clips of the ESC-10 release, 10 classes, 5 folds",
        licence="CC BY 3.0; per-clip Freesound attributions in the upstream README",
        archive=ArchiveSource(
            url=f"https://github.com/karolpiczak/ESC-10/archive/{ESC10_COMMIT}.zip",
            archive_name=f"ESC-10-{ESC10_COMMIT}.zip",
        ),
        mirror_folder="esc10",
        provenance={"repository": "https://github.com/karolpiczak/ESC-10", "commit": ESC10_COMMIT},
        expected_files=400,  # each verified against the embedded esc10.sha256
        num_folds=5,
        folds="official (ESC-50's meta/esc50.csv)",
        source_id="ESC-50 src_file: the Freesound clip a take was cut from",
    ),
    "urbansound8k": DatasetSpec(
        name="urbansound8k",
        description="UrbanSound8K: 8732 slices (<= 4 s), 10 classes, 10 official folds",
        licence="CC BY-NC 3.0 (dataset README); Zenodo lists CC BY-NC 4.0",
        archive=ArchiveSource(
            url=f"https://zenodo.org/records/{US8K_RECORD}/files/UrbanSound8K.tar.gz",
            archive_name="UrbanSound8K.tar.gz",
            md5="9aa69802bbf37fb986f71ec1483a196e",
        ),
        mirror_folder="urbansound8k",
        provenance={"zenodo_record": US8K_RECORD, "doi": "10.5281/zenodo.1203745"},
        expected_files=8732,
        num_folds=10,
        folds="official (metadata/UrbanSound8K.csv)",
        source_id="UrbanSound8K fsID: the Freesound recording a slice was cut from",
    ),
    "quinn": DatasetSpec(
        name="quinn",
        description="ABGQI soundscape mel-spectrogram PNGs (Quinn et al. 2022), class subfolders",
        licence="no open licence; available from the authors on request",
        user_supplied=True,
        provenance={"paper": "doi:10.1016/j.ecolind.2022.108831", "code": "CQuinn8/ABGQI-CNN"},
    ),
    "imagefolder": DatasetSpec(
        name="imagefolder",
        description="any user folder of class subfolders of images",
        licence="as supplied by the user",
        user_supplied=True,
    ),
    "audiofolder": DatasetSpec(
        name="audiofolder",
        description="user audio: class subfolders, or a CSV path,label[,fold] (paths relative)",
        licence="as supplied by the user",
        user_supplied=True,
    ),
    "synthetic": DatasetSpec(
        name="synthetic",
        description="seeded tone-plus-noise clips in ESC-50 layout, for tests and smoke runs",
        licence="CC0 (generated)",
        num_folds=5,
        folds="generated (clip i of a class in fold i % 5 + 1)",
        source_id="one per clip",
    ),
}


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset `name`; an unknown name lists the valid ones."""
    return choose(name, SPECS, "dataset")


# --- params.yaml `download` section ------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticConfig:
    classes: int
    clips_per_class: int  # over all 5 folds
    sample_rate: int
    seconds: float
    seed: int

    def __post_init__(self) -> None:
        where = "download.synthetic"
        require(2 <= self.classes <= 50, f"{where}.classes", f"must be 2..50, got {self.classes}")
        require(
            self.clips_per_class >= 5,
            f"{where}.clips_per_class",
            f"must be >= 5 (one clip per class in each of the 5 folds), got {self.clips_per_class}",
        )
        require(
            8000 <= self.sample_rate <= 192000,
            f"{where}.sample_rate",
            f"must be 8000..192000, got {self.sample_rate}",
        )
        require(
            0.1 <= self.seconds <= 30.0, f"{where}.seconds", f"must be 0.1..30, got {self.seconds}"
        )


@dataclass(frozen=True)
class DownloadConfig:
    on_bad_file: Literal["fail", "skip"]  # skip: drop bad clips, list them
    # Folder of the user-supplied datasets, <user_data>/<name>/; dvc.yaml makes it a dependency
    # of every download instance, so editing a label or a clip reruns the stage.
    user_data: str
    min_seconds: float  # shorter user audio is a bad file
    silence_dbfs: float  # peak below this = silent: flagged (ESC-50: a bad file)
    max_image_pixels: int  # refused before decoding (a decompression bomb)
    max_extract_bytes: int  # extraction stops beyond this many bytes ...
    max_extract_ratio: float  # ... or this many times the archive's size
    synthetic: SyntheticConfig

    def __post_init__(self) -> None:
        require(bool(self.user_data.strip()), "download.user_data", "must name a folder")
        require(self.min_seconds >= 0, "download.min_seconds", f"{self.min_seconds} < 0")
        require(self.silence_dbfs < 0, "download.silence_dbfs", f"{self.silence_dbfs} >= 0")
        for name in ("max_image_pixels", "max_extract_bytes"):
            require(getattr(self, name) >= 1, f"download.{name}", f"{getattr(self, name)} < 1")
        require(
            self.max_extract_ratio >= 1,
            "download.max_extract_ratio",
            f"{self.max_extract_ratio} < 1",
        )

    @property
    def skip_bad_files(self) -> bool:
        return self.on_bad_file == "skip"
