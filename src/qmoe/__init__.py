"""qmoe: reproducibility study of curiosity-driven quantised mixtures of experts (2511.11743)."""

__version__ = "0.1.0"
