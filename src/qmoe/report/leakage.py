"""Same-recording siblings across the split: the share of each protocol's test clips that have a
clip of their own recording (manifest `source_id`) outside their test fold, where training saw it.

ESC clips cut from one recording are near-duplicates, so such a test clip is partly seen in
training. The test folds are read from what the train stage scored (predictions.csv), not
recomputed, so the share is that of the models the report judges.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qmoe.contract.raw import RawFolder
from qmoe.contract.runs import RunFolder, read_predictions
from qmoe.contract.study import RunId
from qmoe.io import InputError


class Leak(NamedTuple):
    dataset: str
    protocol: str
    n_test: int  # test clips over all folds (each clip is tested once)
    n_sibling: int  # of them, those with a same-recording clip outside their test fold

    @property
    def share(self) -> float:
        return self.n_sibling / self.n_test if self.n_test else float("nan")


def siblings(manifest: pd.DataFrame, tests: pd.DataFrame) -> tuple[int, int]:
    """(test clips, test clips with a clip of their recording outside their fold); `tests`: one
    row per test clip (clip_id, fold), `manifest`: clip_id, source_id of every clip."""
    source = manifest.set_index("clip_id")["source_id"]
    unknown = sorted(set(tests["clip_id"]) - set(source.index))
    if unknown:
        raise InputError(f"test clips not in the manifest: {unknown[:5]}")
    t = tests.assign(source=tests["clip_id"].map(source).to_numpy())
    total = t["source"].map(source.value_counts())
    within = t.groupby(["fold", "source"])["clip_id"].transform("size")
    return len(t), int((total - within > 0).sum())


def _tests(runs_root: Path, where: RunId) -> pd.DataFrame | None:
    """Each test clip of one variant's first seed once, with its fold (None: no predictions)."""
    pred = read_predictions(where.under(runs_root), where)
    if pred is None or "clip_id" not in pred or pred.empty:
        return None
    first = pred[pred["seed"] == pred["seed"].min()]
    return first[["clip_id", "fold"]].drop_duplicates("clip_id")


def load(raw_root: Path, runs_root: Path, runs: pd.DataFrame) -> list[Leak]:
    """One Leak per (dataset, protocol) of the runs table whose manifest records recordings."""
    out = []
    for (d, p), part in runs.groupby(["dataset", "protocol"], sort=True):
        path = RawFolder(Path(raw_root) / d).manifest
        if not path.is_file():
            continue
        manifest = pd.read_csv(path, usecols=lambda c: c in ("clip_id", "source_id"))
        if "source_id" not in manifest:
            continue
        where = RunId(d, p, sorted(part["variant"].unique())[0])
        tests = _tests(runs_root, where)
        if tests is None:
            continue
        try:
            out.append(Leak(d, p, *siblings(manifest, tests)))
        except InputError as err:
            raise InputError(
                f"{RunFolder(where.under(runs_root)).predictions} vs {path}: {err}"
            ) from None
    return out


def markdown(leaks: list[Leak]) -> str:
    """One disclosure line: the sibling share per protocol ('' when nothing was measured)."""
    if not leaks:
        return ""
    parts = [
        f"`{k.protocol}`{'' if len({x.dataset for x in leaks}) == 1 else f' ({k.dataset})'}: "
        f"{k.n_sibling} of {k.n_test} ({100 * k.share:.1f} %)"
        for k in leaks
    ]
    return (
        "Test clips with a clip of the same recording (`source_id`) outside their test fold, so "
        f"in training: {'; '.join(parts)}. The faithful protocol's StratifiedKFold on the "
        "labels ignores recordings, so near-duplicate clips of one recording sit on both sides "
        "of its split; the official folds keep each recording in one fold."
    )
