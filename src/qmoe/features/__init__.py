"""Mel spectrogram -> image -> backbone embedding (reference-method.md section 5)."""

from qmoe.features.backbones import BACKBONES, Backbone, band_stats, load_lite0, random_projection
from qmoe.features.embed import (
    Embeddings,
    FeaturesConfig,
    build_backbone,
    emb_columns,
    embed_files,
    embed_manifest,
    features_info,
    features_table,
    features_timings,
)
from qmoe.features.melspec import (
    Audio,
    MelConfig,
    load_audio,
    mel_db,
    mel_power,
    mel_used,
    power_to_db,
)
from qmoe.features.render import colorize, colormap_lut, load_image, render

__all__ = [
    "BACKBONES",
    "Audio",
    "Backbone",
    "Embeddings",
    "FeaturesConfig",
    "MelConfig",
    "band_stats",
    "build_backbone",
    "colorize",
    "colormap_lut",
    "emb_columns",
    "embed_files",
    "embed_manifest",
    "features_info",
    "features_table",
    "features_timings",
    "load_audio",
    "load_image",
    "load_lite0",
    "mel_db",
    "mel_power",
    "mel_used",
    "power_to_db",
    "random_projection",
    "render",
]
