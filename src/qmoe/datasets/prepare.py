"""Build data/raw/<dataset>: obtain the source, place the clips, check them, write the manifest.

Everything happens inside `qmoe.io.atomic_dir`, so a failure at any step leaves no partial output.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from qmoe.datasets import esc, folders, synthetic, urbansound
from qmoe.datasets.fetch import Source, find_root, obtain
from qmoe.datasets.manifest import (
    Probe,
    check_clips,
    probe_audio,
    probe_image,
    to_frame,
    write_outputs,
)
from qmoe.datasets.registry import DatasetSpec, DownloadConfig, get_spec
from qmoe.io import atomic_dir

log = logging.getLogger(__name__)


class Context(NamedTuple):
    spec: DatasetSpec
    raw: Path  # the temporary data/raw/<dataset> being filled
    work: Path  # scratch inside `raw` (downloads, extraction); removed before the commit
    env: Mapping[str, str]
    cfg: DownloadConfig


class Built(NamedTuple):
    rows: list[dict[str, Any]]
    source: Source
    probe: Probe
    extra: dict[str, Any]  # more dataset.json fields


def _esc50(ctx: Context) -> Built:
    src = obtain(ctx.spec, ctx.work, ctx.env)
    root = find_root(src.root, esc.ESC50_META, "an ESC-50 copy")
    rows = esc.build_esc50(
        root, ctx.raw, ctx.spec.expected_files or 0, move=src.origin != "mirror folder"
    )
    return Built(rows, src, probe_audio, {})


def _esc10(ctx: Context) -> Built:
    src = obtain(ctx.spec, ctx.work, ctx.env)
    root = find_root(src.root, "001 - Dog bark", "an ESC-10 copy")
    rows = esc.build_esc10(root, ctx.raw, move=src.origin != "mirror folder")
    return Built(
        rows, src, probe_audio, {"per_file_sha256": "verified against embedded esc10.sha256"}
    )


def _urbansound8k(ctx: Context) -> Built:
    src = obtain(ctx.spec, ctx.work, ctx.env)
    root = find_root(src.root, urbansound.US8K_META, "an UrbanSound8K copy")
    rows = urbansound.build_urbansound8k(
        root, ctx.raw, ctx.spec.expected_files or 0, move=src.origin != "mirror folder"
    )
    return Built(rows, src, probe_audio, {})


def _synthetic(ctx: Context) -> Built:
    cfg = ctx.cfg.synthetic
    root = ctx.work / "synthetic"
    n = synthetic.generate(root, cfg)
    rows = esc.build_esc50(root, ctx.raw, n, move=True)  # the same code path as real ESC-50
    return Built(rows, Source(root, "generated", None), probe_audio, {"synthetic": cfg})


def _image_folder(ctx: Context) -> Built:
    src = folders.user_source(ctx.spec, ctx.env)
    return Built(
        folders.build_folder(src.root, ctx.raw, folders.IMAGE_SUFFIXES), src, probe_image, {}
    )


def _audio_folder(ctx: Context) -> Built:
    src = folders.user_source(ctx.spec, ctx.env)
    return Built(
        folders.build_folder(src.root, ctx.raw, folders.AUDIO_SUFFIXES), src, probe_audio, {}
    )


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
        **built.extra,
    }


def build(
    name: str, out: Path, cfg: DownloadConfig, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Create `out` (= data/raw/<name>) with files/, manifest.csv and dataset.json; return the
    dataset.json content. Unknown names raise ConfigError listing the valid ones."""
    spec = get_spec(name)
    builder = BUILDERS[spec.name]
    env = os.environ if env is None else env
    with atomic_dir(out) as raw:
        ctx = Context(spec, raw, raw / ".work", env, cfg)
        built = builder(ctx)
        rows, rejects = check_clips(built.rows, raw, built.probe, cfg.skip_bad_files)
        shutil.rmtree(ctx.work, ignore_errors=True)
        df = to_frame(rows)
        meta = write_outputs(df, raw, _dataset_info(spec, built, cfg), rejects)
    log.info(
        "%s: %d clips, %d classes, %d folds, %d rejected -> %s",
        name, meta["file_count"], meta["num_classes"], meta["num_folds"], len(rejects), out,
    )  # fmt: skip
    return meta
