"""Build data/raw/<dataset>: obtain the source, place the clips, check them, write the manifest.

Everything happens inside `qmoe.io.atomic_dir`, so a failure at any step leaves no partial output.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from qmoe.datasets import esc, folders, synthetic, urbansound
from qmoe.datasets.archive import ExtractLimits
from qmoe.datasets.fetch import Source, find_root, obtain
from qmoe.datasets.manifest import Probe, check_clips, check_folds, to_frame, write_outputs
from qmoe.datasets.media import AudioRules, probe_audio, probe_image
from qmoe.datasets.registry import DatasetSpec, DownloadConfig, get_spec
from qmoe.io import atomic_dir

log = logging.getLogger(__name__)

UNVERIFIED_FOLDER = "mirror folder: no per-file checksums are published, content not verified"


class Context(NamedTuple):
    spec: DatasetSpec
    raw: Path  # the temporary data/raw/<dataset> being filled
    work: Path  # scratch inside `raw` (downloads, extraction); removed before the commit
    env: Mapping[str, str]
    cfg: DownloadConfig
    bundled: Path | None  # the repository's committed input folder, searched before any mirror

    def obtain(self) -> Source:
        limits = ExtractLimits(self.cfg.max_extract_bytes, self.cfg.max_extract_ratio)
        return obtain(self.spec, self.work, self.env, limits, self.bundled)

    def audio_probe(self, min_seconds: float = 0.0) -> Probe:
        """probe_audio with the dataset's clip format (silence then refused) or only a floor."""
        fmt = self.spec.clip_format
        rules = AudioRules(min_seconds, self.cfg.silence_dbfs, silent_is_bad=fmt is not None,
                           **(fmt._asdict() if fmt else {}))  # fmt: skip
        return functools.partial(probe_audio, rules=rules)


class Built(NamedTuple):
    rows: list[dict[str, Any]]
    source: Source
    probe: Probe
    extra: dict[str, Any]  # more dataset.json fields (content_verified, content_check, ...)


def _archive_content(ctx: Context, src: Source, folder_check: str) -> dict[str, Any]:
    """dataset.json's verdict on the content: an archive with a published checksum is verified."""
    archive = ctx.spec.archive
    if src.archive_sha256 is not None and archive and (archive.md5 or archive.sha256):
        algo, value = ("sha256", archive.sha256) if archive.sha256 else ("md5", archive.md5)
        return {
            "content_verified": True,
            "content_check": f"archive {algo} matches the published {value}",
        }
    return {"content_verified": False, "content_check": f"{UNVERIFIED_FOLDER}; {folder_check}"}


def _esc50(ctx: Context) -> Built:
    src = ctx.obtain()
    root = find_root(src.root, esc.ESC50_META, "an ESC-50 copy")
    rows = esc.build_esc50(
        root,
        ctx.raw,
        ctx.spec.expected_files or 0,
        move=not src.read_only,
        digest=ctx.spec.meta_digest,
    )
    checked = (
        "meta/esc50.csv is the official metadata; its 2,000 files are present, each 5.0 s, "
        "44.1 kHz mono, not silent"
    )
    return Built(rows, src, ctx.audio_probe(), _archive_content(ctx, src, checked))


def _esc10(ctx: Context) -> Built:
    src = ctx.obtain()
    root = find_root(src.root, "001 - Dog bark", "an ESC-10 copy")
    rows = esc.build_esc10(root, ctx.raw, move=not src.read_only)
    content = {
        "content_verified": True,
        "content_check": "every clip's sha256 matches the embedded esc10.sha256",
    }
    return Built(rows, src, ctx.audio_probe(), content)


def _urbansound8k(ctx: Context) -> Built:
    src = ctx.obtain()
    root = find_root(src.root, urbansound.US8K_META, "an UrbanSound8K copy")
    rows = urbansound.build_urbansound8k(
        root, ctx.raw, ctx.spec.expected_files or 0, move=not src.read_only
    )
    checked = "the 8,732 files named in metadata/UrbanSound8K.csv are present and decode"
    return Built(rows, src, ctx.audio_probe(), _archive_content(ctx, src, checked))


def _synthetic(ctx: Context) -> Built:
    cfg = ctx.cfg.synthetic
    root = ctx.work / "synthetic"
    n = synthetic.generate(root, cfg)
    rows = esc.build_esc50(root, ctx.raw, n, move=True)  # the same code path as real ESC-50
    content = {"content_verified": True, "content_check": "generated from download.synthetic",
               "synthetic": cfg}  # fmt: skip
    return Built(rows, Source(root, "generated", None), ctx.audio_probe(), content)


def _user(ctx: Context, suffixes: frozenset[str], probe: Probe) -> Built:
    src = folders.user_source(ctx.spec, ctx.cfg.user_data, ctx.env)
    data = folders.build_folder(src.root, ctx.raw, suffixes)
    info = {"content_verified": False, "content_check": "user-supplied, not verified",
            "user_data": f"{ctx.cfg.user_data}/{ctx.spec.name}", **data.extra}  # fmt: skip
    return Built(data.rows, src, probe, info)


def _image_folder(ctx: Context) -> Built:
    probe = functools.partial(probe_image, max_pixels=ctx.cfg.max_image_pixels)
    return _user(ctx, folders.IMAGE_SUFFIXES, probe)


def _audio_folder(ctx: Context) -> Built:
    return _user(ctx, folders.AUDIO_SUFFIXES, ctx.audio_probe(ctx.cfg.min_seconds))


BUILDERS: dict[str, Callable[[Context], Built]] = {
    "esc50": _esc50,
    "esc10": _esc10,
    "urbansound8k": _urbansound8k,
    "quinn": _image_folder,
    "imagefolder": _image_folder,
    "audiofolder": _audio_folder,
    "synthetic": _synthetic,
}


def _dataset_info(spec: DatasetSpec, built: Built, cfg: DownloadConfig) -> dict[str, Any]:
    archive = spec.archive if built.source.origin in ("download", "mirror archive") else None
    return {
        "name": spec.name,
        "description": spec.description,
        "licence": spec.licence,
        "source": {
            **spec.provenance,
            "url": spec.archive.url if spec.archive else None,
            "origin": built.source.origin,  # no local paths: dataset.json is the same everywhere
        },
        "archive_name": archive.archive_name if archive else None,
        "archive_sha256": built.source.archive_sha256,
        "archive_md5_expected": archive.md5 if archive else None,
        "on_bad_file": cfg.on_bad_file,
        "folds": spec.folds,  # where the folds come from (a CSV's fold column overrides)
        "source_id": spec.source_id,  # what groups clips when folds are made at train time
        **built.extra,
    }


def build(
    name: str,
    out: Path,
    cfg: DownloadConfig,
    env: Mapping[str, str] | None = None,
    bundled: Path | None = None,
) -> dict[str, Any]:
    """Create `out` (= data/raw/<name>) with files/, the manifest and dataset.json; return the
    dataset.json content. `bundled/<name>` (the repository's committed copy) is read before any
    mirror or download. Unknown names raise ConfigError listing the valid ones."""
    spec = get_spec(name)
    builder = BUILDERS[spec.name]
    env = os.environ if env is None else env
    with atomic_dir(out) as raw:
        ctx = Context(spec, raw, raw / ".work", env, cfg, bundled)
        built = builder(ctx)
        checked = check_clips(built.rows, raw, built.probe, cfg.skip_bad_files)
        shutil.rmtree(ctx.work, ignore_errors=True)
        df = to_frame(checked.rows)
        check_folds(df)
        meta = write_outputs(df, raw, _dataset_info(spec, built, cfg), checked)
    log.info(
        "%s: %d clips, %d classes, %d folds, %d rejected, %d flagged -> %s", name,
        meta["file_count"], meta["num_classes"], meta["num_folds"], len(checked.rejects),
        len(checked.flagged), out,
    )  # fmt: skip
    return meta
