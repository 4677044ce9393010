"""The report's provenance says where folds came from and whether a dataset's content was verified
(qmoe.report.provenance, from dataset.json)."""

import json

import pandas as pd

from qmoe.report import provenance


def test_unverified_mirror_folder_and_folds_are_shown(tmp_path):
    metas = {
        "esc50": {
            "source": {"origin": "mirror folder"},
            "licence": "CC BY-NC",
            "file_count": 2000,
            "archive_sha256": None,
            "folds": "official (meta/esc50.csv)",
            "content_verified": False,
            "content_check": "mirror folder: no per-file checksums are published",
        },
        "audiofolder": {
            "folds": "user labels.csv, column fold",
            "content_verified": False,
            "content_check": "user-supplied, not verified",
            "file_count": 4,
        },
        "urbansound8k": {
            "archive_sha256": "ab" * 32,
            "content_verified": True,
            "content_check": "archive md5 matches the published 9aa6",
        },
    }
    for name, meta in metas.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.json").write_text(json.dumps(meta))
        pd.DataFrame({"clip_id": ["a"], "sha256": ["1"]}).to_csv(tmp_path / name / "manifest.csv")
    rows = provenance.dataset_rows(tmp_path, list(metas)).set_index("dataset")
    assert rows.loc["esc50", "content"] == (
        "**unverified**: mirror folder: no per-file checksums are published"
    )
    assert rows.loc["audiofolder", "folds"] == "user labels.csv, column fold"
    assert rows.loc["urbansound8k", "content"] == "verified: archive md5 matches the published 9aa6"
    assert rows.loc["urbansound8k", "folds"] == "n/a"
    text = provenance.markdown("abc", {}, rows.reset_index(), [], [])
    assert "| Folds | Content |" in text
    assert "| official (meta/esc50.csv) | **unverified**: mirror folder" in text


def test_the_commit_provenance_names_is_read_back_dirty_or_not():
    text = provenance.markdown("abc123-dirty", {}, pd.DataFrame(columns=["dataset"]), [], [])
    assert provenance.commits_named(text) == ["abc123-dirty"]
    assert provenance.commits_named("- " + provenance.commit_line("abc123")) == ["abc123"]
    assert provenance.commits_named("no provenance here") == []
