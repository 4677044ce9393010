"""README.md's `dvc exp run -S 'key=value'` examples run as written: each one, applied to
params.yaml the way DVC applies it, passes every check the stages make of their params."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from repo_params import PARAMS, validate

from qmoe.io import ConfigError

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# -S / --set-param, quoted or not, in console blocks and in the text around them
SET = re.compile(r"(?:-S|--set-param)[ =](?:'([^']+)'|\"([^\"]+)\"|([^\s'\"`]+))")
EXAMPLES = [next(g for g in m.groups() if g) for m in SET.finditer(README)]


def apply(params: dict, override: str) -> dict:
    """`dvc exp run -S key.path=value`: the value parsed as YAML, set at the dotted path."""
    key, _, text = override.partition("=")
    out = copy.deepcopy(params)
    entry = out
    *parents, leaf = key.split(".")
    for part in parents:
        entry = entry.setdefault(part, {})
    entry[leaf] = yaml.safe_load(text)
    return out


def test_the_readme_shows_examples():
    assert "variants.w4a8.weight_bits=2" in EXAMPLES and len(EXAMPLES) >= 5


@pytest.mark.parametrize("override", EXAMPLES)
def test_every_readme_override_passes_the_stages_params_checks(override):
    validate(apply(PARAMS, override))


@pytest.mark.parametrize(
    "override, message",
    [
        ("variants.w4a8.weight_bits=3", r"variants.w4a8.weight_bits: 3 cannot be exported"),
        ("study.experts=[w4a8, w4a8]", r"study.experts: \['w4a8'\] listed more than once"),
        ("study.varients=[w4a8]", r"study: unknown key\(s\) \['varients'\]"),
        ("trian.epochs=5", r"params.yaml: unknown section\(s\) \['trian'\]"),
        ("export.check.rtol=1000", "export.check.rtol: 1000.0"),
        ("study.datasets=[esc5]", "unknown dataset 'esc5'"),
    ],
)
def test_the_check_refuses_what_a_stage_would(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(apply(PARAMS, override))
