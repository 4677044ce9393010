"""Stage `train`: protocols, fit recipes, one run, the grid, artefacts, metrics."""
