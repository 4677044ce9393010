"""Quantisation: pure primitives, the quantised linear layers, post-training conversion, packing."""
