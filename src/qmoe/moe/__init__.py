"""Mixture of experts: router and MC-dropout sampling, curiosity strategies, the top-k MoE layer."""
