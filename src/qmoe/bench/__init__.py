"""Stage `benchmark`: the harness over trained models, latency timing, energy, device record."""
