"""Stage `train`: protocols (splits), fit recipes, one run of the study, trained artefacts, metrics."""
