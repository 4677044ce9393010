"""Same-recording siblings across each protocol's split (qmoe.report.leakage)."""

import pandas as pd
import pytest

from qmoe.io import InputError
from qmoe.report import leakage


def _manifest() -> pd.DataFrame:
    # a, b: two clips of one recording each; c, d: one clip each
    return pd.DataFrame({"clip_id": list("123456"), "source_id": list("aabbcd")})


def test_a_test_clip_whose_recording_has_a_clip_in_another_fold_has_a_sibling_in_training():
    # 1 and 2 (recording a) in different folds: both leak; 3 and 4 (b) share fold 1: neither
    tests = pd.DataFrame({"clip_id": list("123456"), "fold": [1, 2, 1, 1, 2, 2]})
    assert leakage.siblings(_manifest(), tests) == (6, 2)
    grouped = tests.assign(fold=[1, 1, 2, 2, 1, 2])  # folds that keep recordings together
    assert leakage.siblings(_manifest(), grouped) == (6, 0)


def test_a_test_clip_missing_from_the_manifest_is_an_error():
    tests = pd.DataFrame({"clip_id": ["1", "x"], "fold": [1, 2]})
    with pytest.raises(InputError, match=r"test clips not in the manifest: \['x'\]"):
        leakage.siblings(_manifest(), tests)


def test_the_disclosure_gives_each_protocols_share():
    leaks = [
        leakage.Leak("esc10", "corrected", 400, 0),
        leakage.Leak("esc10", "faithful", 400, 151),
    ]
    text = leakage.markdown(leaks)
    assert text.startswith(
        "Test clips with a clip of the same recording (`source_id`) outside their test fold, so "
        "in training: `corrected`: 0 of 400 (0.0 %); `faithful`: 151 of 400 (37.8 %). "
    )
    assert leakage.markdown([]) == ""
