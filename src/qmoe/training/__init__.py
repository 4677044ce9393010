"""Stages `train`, `train_moe`: protocols, fit recipes, one run, the grid, artefacts, metrics."""
