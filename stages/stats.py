"""Tests on the runs table and latency samples -> reports/stats/. DVC stage: stats."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from qmoe.analysis import (
    claims,
    escalation,
    families,
    latency,
    latency_scope,
    paper_tables,
    reference_tables,
    results,
    roles,
    routing,
)
from qmoe.analysis.names import COMPUTED, Table
from qmoe.analysis.sizes import layer_bytes
from qmoe.analysis.stats import StatsConfig
from qmoe.cli import read_params, run_stage
from qmoe.contract import benchmarks
from qmoe.contract.runs import read_runs_table
from qmoe.io import atomic_dir, from_section, save_json

log = logging.getLogger("stages.stats")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--table", type=Path, required=True, help="reports/tables/runs.csv")
    ap.add_argument("--runs", type=Path, required=True, help="data/runs (predictions)")
    ap.add_argument("--benchmarks", type=Path, required=True, help="data/benchmarks")
    ap.add_argument("--deployed", type=Path, required=True, help="data/deployed (layer sizes)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    cfg = from_section(StatsConfig, read_params().get("stats"), "stats")
    runs = read_runs_table(args.table)
    samples = benchmarks.load_samples(args.benchmarks, runs)  # each protocol's runtime, per regime
    rounds = latency.load_bench_table(args.benchmarks, runs, "rounds")  # latency pairs by round
    tables = families.run_families(runs, samples, cfg, rounds)
    tables[Table.LATENCY_SCOPE] = latency_scope.scope_table(args.benchmarks, runs, cfg)
    tables[Table.LATENCY_SPREAD_ROUTING] = latency.spread_routing(samples, runs, args.benchmarks)
    frontend = latency.load_bench_table(args.benchmarks, runs, "frontend")
    tables[Table.PIPELINE_COST] = latency.pipeline_cost(frontend, runs)  # whole path per clip
    records = routing.load(args.runs, runs)  # escalating MoEs' curiosity records
    tables[Table.ROUTING_ESCALATION] = routing.escalation(records, runs)
    route = escalation.route_models(records, runs)  # u vs random escalation, same weights
    tables[Table.ROUTING_SAME_WEIGHTS] = escalation.same_weights(route, cfg)
    tables[Table.ROUTING_SHARE_CURVE] = escalation.share_curve(route, cfg)
    v3 = roles.resolve(roles.CURIOSITY_V3, results.variant_facts(runs))  # its routing claim
    routed = results.routed_predictions(args.runs, args.benchmarks, runs, v3)
    sizes = layer_bytes(args.deployed, runs, ("bitlinear", "half"))  # compression, like with like
    evidence = claims.evidence(claims.Context(tables, runs, routed, cfg, sizes))
    tables |= reference_tables.significance_tables(runs, cfg) | paper_tables.std_tables(runs, cfg)

    summary = {"config": dataclasses.asdict(cfg), "methods": families.METHODS, "families": {}}
    with atomic_dir(args.out) as tmp:
        for name, frame in tables.items():
            frame.to_csv(tmp / f"{name}.csv", index=False)
            if "status" in frame:
                done = int((frame["status"] == COMPUTED).sum())
                summary["families"][name] = {"computed": done, "not_computed": len(frame) - done}
        evidence.to_csv(tmp / "claims.csv", index=False)
        save_json(tmp / "stats.json", summary)
    log.info("wrote %d tables and claims.csv to %s", len(tables), args.out)


if __name__ == "__main__":
    run_stage(main)
