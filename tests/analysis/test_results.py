"""The results tree read into tidy frames (qmoe.analysis.results): facts from each run's recorded
config, keys of latency files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmoe.analysis import results
from qmoe.contract import benchmarks
from qmoe.contract.runs import read_runs_table
from qmoe.contract.study import RunId, Study
from qmoe.io import InputError

EXPERTS = ("ternary_reference", "w4a8", "w8a8")


def _roots(tree: Path) -> results.Roots:
    return results.Roots(tree / "runs", tree / "train_cost", tree / "benchmarks")


def _study(variants: list[str], moe: list[str] = ()) -> Study:
    return Study(("toy",), ("corrected", "faithful"), tuple(variants), tuple(moe), EXPERTS)


def test_facts_come_from_the_recorded_config_not_the_name(tmp_path, results_tree, config_of):
    results_tree(
        tmp_path,
        ["fp32", "w4a8", "moe_curiosity_kl"],
        configs={"w4a8": config_of("w4a8", weight_bits=2)},
    )
    runs = results.runs_table(_roots(tmp_path), _study(["fp32", "w4a8"], ["moe_curiosity_kl"]))
    facts = results.variant_facts(runs)
    assert facts.loc["w4a8"].tolist() == ["bitlinear", 2.0, 8.0, 2.0, False, ""]
    assert facts.loc["fp32"].tolist() == ["fp32", 32.0, 32.0, 32.0, False, ""]
    kl = facts.loc["moe_curiosity_kl"]
    assert kl["is_moe"] and kl["curiosity"] == "kl" and np.isnan(kl["weight_bits"])
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    again = read_runs_table(path)
    assert results.variant_facts(again).equals(facts)  # "" and booleans survive the CSV


def test_a_run_without_its_config_is_an_error_naming_the_file(tmp_path, results_tree):
    results_tree(tmp_path, ["fp32"])
    path = tmp_path / "runs/toy/corrected/fp32/metrics.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "variant_config"}))
    with pytest.raises(InputError, match=f"{path}: no 'variant_config'"):
        results.runs_table(_roots(tmp_path), _study(["fp32"]))
    path.write_text(json.dumps({**data, "variant_config": {"kind": "bitlinear"}}))
    with pytest.raises(InputError, match=f"{path}: variant_config: .*weight_bits"):
        results.runs_table(_roots(tmp_path), _study(["fp32"]))


def test_run_folder_must_name_its_own_run(tmp_path, results_tree):
    results_tree(tmp_path, ["fp32"])
    path = tmp_path / "runs/toy/corrected/fp32/metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "variant": "w4a8"}))
    with pytest.raises(InputError, match="variant is 'w4a8', expected 'fp32'"):
        results.runs_table(_roots(tmp_path), _study(["fp32"]))


def test_benchmark_and_run_keys_must_agree(tmp_path, results_tree):
    results_tree(tmp_path, ["fp32"])
    summary = tmp_path / "benchmarks/toy/faithful/fp32/summary.csv"
    pd.read_csv(summary).iloc[1:].to_csv(summary, index=False)
    with pytest.raises(
        InputError,
        match=r"metrics.json and summary.csv differ: only in the first \[\(1, 42\)\], only in "
        r"the second \[\]",
    ):
        results.runs_table(_roots(tmp_path), _study(["fp32"]))


def test_a_variant_trained_with_two_configs_is_refused():
    runs = pd.DataFrame(
        {
            "variant": ["w4a8", "w4a8"],
            "kind": "bitlinear",
            "weight_bits": [4.0, 3.0],
            "activation_bits": 8.0,
            "precision_bits": [4.0, 3.0],
            "is_moe": False,
            "curiosity": "",
        }
    )
    with pytest.raises(InputError, match="variant 'w4a8' was trained with different configs"):
        results.variant_facts(runs)


def test_latency_files_are_read_by_key_any_integer_seed(tmp_path, results_tree):
    results_tree(tmp_path, ["fp32"], n_latency=7, seeds={"faithful": [-1]})
    where = RunId("toy", "faithful", "fp32")
    lat = benchmarks.read_samples(tmp_path / "benchmarks", where, "latency/warm")
    assert len(lat) == 3 * 7 and sorted(lat["fold"].unique()) == [1, 2, 3]
    assert set(lat["seed"]) == {-1}
    np.save(where.under(tmp_path / "benchmarks") / "latency" / "warm" / "fold1.npy", np.ones(3))
    with pytest.raises(InputError, match="fold1.npy: latency file name is not fold<k>_seed<s>.npy"):
        benchmarks.read_samples(tmp_path / "benchmarks", where, "latency/warm")


def test_routed_predictions_carry_each_experts_config(tmp_path, results_tree, config_of):
    moe = config_of("moe_curiosity_kl")
    results_tree(tmp_path, ["moe_curiosity_kl"])
    runs = results.runs_table(_roots(tmp_path), _study([], ["moe_curiosity_kl"]))
    routed = results.routed_predictions(
        tmp_path / "runs", tmp_path / "benchmarks", runs, "moe_curiosity_kl"
    )
    experts = routed.groupby("expert_name")[["expert_kind", "expert_weight_bits"]].first()
    assert [e["name"] for e in moe["experts"]] == ["ternary_reference", "w4a8", "w8a8"]
    assert experts.loc["w8a8"].tolist() == ["bitlinear", 8.0]
    assert experts.loc["ternary_reference", "expert_kind"] == "ternary_reference"
    assert (
        len(routed)
        == len(pd.read_csv(tmp_path / "runs/toy/corrected/moe_curiosity_kl/predictions.csv"))
        + 3 * 12
    )


def test_training_cost_comes_from_its_own_file_and_is_set_against_inference(tmp_path, results_tree):
    """The run folder holds no measurement (DVC hashes it); the cost file's time and energy join
    each model, and break-even inferences set training energy against inference energy."""
    results_tree(tmp_path, ["fp32"])
    runs = results.runs_table(_roots(tmp_path), _study(["fp32"]))
    cost = json.loads((tmp_path / "train_cost/toy/corrected/fp32.json").read_text())
    first = cost["runs"][0]
    row = runs[(runs["protocol"] == "corrected") & (runs["fold"] == first["fold"])]
    row = row[row["seed"] == first["seed"]].iloc[0]
    assert row["train_energy_kwh"] == first["train_energy_kwh"]
    assert row["train_seconds"] == first["train_seconds"]
    assert row["energy_method"] == cost["energy_method"] != row["bench_energy_method"]
    per_j = row["energy_per_inference_mj"] / 1e3
    assert row["break_even_inferences"] == pytest.approx(first["train_energy_kwh"] * 3.6e6 / per_j)
    path = tmp_path / "train_cost/toy/faithful/fp32.json"
    path.unlink()
    with pytest.raises(FileNotFoundError, match="fp32.json: not found"):
        results.runs_table(_roots(tmp_path), _study(["fp32"]))
