"""Train one variant on every fold (and seed) of one protocol, and evaluate it as deployed. DVC stage: train."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import torch

from qmoe.bench.energy import EnergyConfig, EnergyMeter
from qmoe.cli import read_params, run_stage
from qmoe.io import atomic_dir, from_section, save_checkpoint, save_json
from qmoe.training import experiment
from qmoe.training.fit import TrainConfig

log = logging.getLogger("stages.train")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    params = read_params()
    cfg = from_section(TrainConfig, params.get("train"), "train")
    torch.set_num_threads(cfg.threads)
    country = from_section(EnergyConfig, params.get("energy"), "energy").country_iso_code
    variants = experiment.variants_subset(args.variant, params.get("variants") or {})
    protocol = experiment.make_protocol(args.protocol, cfg)
    table_path = args.features / "features.parquet"
    if not table_path.is_file():
        raise FileNotFoundError(f"{table_path}: feature table not found (run the features stage)")
    data = experiment.embeddings_from_table(pd.read_parquet(table_path), cfg.labels)

    runs, history, predictions = [], [], []
    with atomic_dir(args.out) as tmp, EnergyMeter(country_iso_code=country) as meter:
        for split in protocol.splits(data.y.numpy(), data.folds, data.groups, seed=cfg.split_seed):
            for seed in experiment.seeds_for(protocol, cfg):
                context = f"{args.dataset}/{args.protocol}/{args.variant} fold {split.fold} seed {seed}"
                with meter.measure(f"train {context}") as energy:
                    r = experiment.run_one(data, split, seed, args.variant, variants, params["model"],
                                           cfg, protocol, context)
                log.info("%s: macro-F1 %.4f (epoch %d of %d, %.2f s)", context, r.metrics["macro_f1"],
                         r.metrics["selected_epoch"], r.metrics["epochs_run"],
                         r.metrics["train_seconds"])
                runs.append({**r.metrics, "train_energy_kwh": energy.energy_kwh,
                             "train_emissions_kg": energy.emissions_kg, "energy_method": energy.method})
                history += [{"fold": split.fold, "seed": seed, **h} for h in r.fit.history]
                predictions.append(experiment.prediction_frame(data, split, seed, r.prediction))
                meta = experiment.checkpoint_meta(args, data, split, seed, r, variants, params["model"])
                save_checkpoint(tmp / f"fold{split.fold}_seed{seed}.pt", r.model.state_dict(), meta)
                curiosity = experiment.curiosity_record(data, split, r.prediction)
                if curiosity is not None:   # after evaluation: outside any timed region
                    save_json(tmp / "curiosity" / f"fold{split.fold}_seed{seed}.json", curiosity)
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False)
        pd.concat(predictions).to_csv(tmp / "predictions.csv", index=False)
        save_json(tmp / "metrics.json", {"dataset": args.dataset, "protocol": args.protocol,
                                          "variant": args.variant, "class_names": data.class_names,
                                          "runs": runs})


if __name__ == "__main__":
    run_stage(main)
