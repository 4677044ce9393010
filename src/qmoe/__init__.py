"""qmoe: reproducibility study of curiosity-driven quantised mixture-of-experts (arXiv 2511.11743)."""

__version__ = "0.1.0"
