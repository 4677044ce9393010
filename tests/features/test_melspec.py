"""Mel spectrogram and rendering (qmoe.features.melspec, qmoe.features.render)."""

from __future__ import annotations

import math
import warnings

import matplotlib
import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from repo_params import config

from qmoe.features import MelConfig, colorize, colormap_lut, load_audio, load_image, mel_db, render
from qmoe.features.melspec import Audio, mel_power, mel_transform
from qmoe.io import ConfigError


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()  # (T,)


def band_peak_hz(cfg: MelConfig, sr: int, band: int) -> float:
    """Frequency of the FFT bin where mel band `band`'s triangular filter peaks."""
    fb = mel_transform(cfg, sr).mel_scale.fb  # (n_freqs, n_mels)
    return fb[:, band].argmax().item() * sr / cfg.n_fft


def test_mel_of_a_sine_has_the_expected_shape_range_and_peak():
    cfg, sr = config(MelConfig, "features.mel"), 22050
    wav = sine(1000.0, sr, 1.0)
    db = mel_db(Audio(wav, sr), cfg)
    assert db.shape == (128, 1 + wav.shape[0] // 32)
    assert db.max().item() == 0.0  # exactly: dB relative to the clip maximum
    assert db.min().item() == -80.0  # a pure tone spans more than top_db: clamped
    peak = db.mean(dim=1).argmax().item()
    assert abs(band_peak_hz(cfg, sr, peak) - 1000.0) < 60.0


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_blockwise_mel_equals_torchaudio_melspectrogram(pad_mode):
    sr, n = 16000, 16000 + 1234  # not a multiple of the block size
    wav = torch.randn(n, generator=torch.Generator().manual_seed(0))
    cfg = config(MelConfig, "features.mel", hop_length=32, f_max=8000.0, pad_mode=pad_mode)
    ref = torchaudio.transforms.MelSpectrogram(
        sr,
        n_fft=2048,
        win_length=2048,
        hop_length=32,
        f_min=0.0,
        f_max=8000.0,
        n_mels=128,
        power=2.0,
        center=True,
        pad_mode=pad_mode,
        mel_scale="slaney",
        norm="slaney",
    )(wav)
    ours = mel_power(wav, sr, cfg)  # (128, 1 + n // 32)
    assert ours.shape == ref.shape == (128, 1 + n // 32)
    torch.testing.assert_close(ours, ref, rtol=2e-5, atol=1e-6 * ref.max().item())


def test_f_max_is_capped_at_nyquist_for_low_sample_rates():
    cfg, sr = config(MelConfig, "features.mel", f_max=20000.0), 16000
    assert mel_transform(cfg, sr).mel_scale.f_max == 8000.0
    wav = torch.randn(sr, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchaudio warns about all-zero filters past Nyquist
        power = mel_power(wav, sr, cfg)
    assert (power.mean(dim=1) > 0).all()  # every band sees signal: none lies above Nyquist


def test_mel_config_range_checks_name_the_field():
    with pytest.raises(ConfigError, match="features.mel.f_max"):
        config(MelConfig, "features.mel", f_min=100.0, f_max=50.0)
    with pytest.raises(ConfigError, match="features.mel.top_db"):
        config(MelConfig, "features.mel", top_db=0.0)


def test_load_audio_mixes_down_to_mono(tmp_path):
    left, right = sine(440.0, 8000, 0.5).numpy(), np.zeros(4000, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.sample_rate == 8000
    torch.testing.assert_close(audio.wav, torch.from_numpy(left) / 2)


def test_load_audio_rejects_empty_and_undecodable_files_by_name(tmp_path):
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match=r"empty\.wav: empty audio"):
        load_audio(empty)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not a wav file")
    with pytest.raises(ValueError, match=r"junk\.wav: cannot decode audio"):
        load_audio(junk)


def test_colour_mapping_matches_matplotlib_and_puts_low_frequencies_at_the_bottom():
    magma = matplotlib.colormaps["magma"]
    norm = matplotlib.colors.Normalize(vmin=-80.0, vmax=0.0)  # what specshow's autoscale gives
    values = [-80.0, -57.3, -40.0, -12.5, 0.0]
    db = torch.tensor([values, [-80.0] * 5])  # (2 mel bands, 5 frames); band 0 = low frequency
    rgb = colorize(db, 80.0, colormap_lut("magma"))  # (3, 2, 5)
    assert rgb.shape == (3, 2, 5)
    expected = torch.tensor(magma(norm(np.array(values)))[:, :3].T, dtype=torch.float32)
    assert torch.equal(rgb[:, 1], expected)  # band 0 is the bottom row of the image
    assert torch.equal(rgb[:, 0], expected[:, :1].expand(3, 5))  # band 1 (all -80) on top


def test_render_gives_a_fixed_size_image_with_low_bands_at_the_bottom():
    db = torch.full((128, 3000), -80.0)
    db[:64] = 0.0  # loud low half (bands 0..63), silent high half
    img = render(db, 80.0, colormap_lut("magma"), 224)
    assert img.shape == (3, 224, 224) and img.dtype == torch.float32
    assert 0.0 <= img.min().item() and img.max().item() <= 1.0
    lut = colormap_lut("magma")
    torch.testing.assert_close(img[:, -1, 0], lut[:, -1])  # bottom row: loudest colour
    torch.testing.assert_close(img[:, 0, 0], lut[:, 0])  # top row: quietest colour


def test_unknown_colour_map_is_a_config_error():
    with pytest.raises(ConfigError, match="features.cmap: unknown matplotlib colour map 'magmaa'"):
        colormap_lut("magmaa")


def test_image_files_load_as_rgb_at_the_backbone_size(tmp_path):
    from PIL import Image

    Image.new("L", (40, 30), 128).save(tmp_path / "grey.png")  # greyscale -> RGB, as PIL does
    img = load_image(tmp_path / "grey.png", 64)
    assert img.shape == (3, 64, 64)
    torch.testing.assert_close(img, torch.full((3, 64, 64), 128 / 255))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"bad\.png: cannot read image"):
        load_image(tmp_path / "bad.png", 64)


def test_a_long_clip_is_read_only_up_to_max_seconds(tmp_path, caplog):
    x = (0.1 * np.random.default_rng(0).standard_normal(8000 * 12)).astype(np.float32)
    soundfile.write(tmp_path / "long.wav", x, 8000, subtype="PCM_16")
    assert load_audio(tmp_path / "long.wav").wav.shape == (96000,)
    with caplog.at_level("WARNING"):
        audio = load_audio(tmp_path / "long.wav", max_seconds=2.5)
    assert audio.wav.shape == (20000,) and audio.sample_rate == 8000
    assert "long.wav: 12.0 s long, only its first 2.5 s are used (features.max_seconds)" in (
        caplog.text
    )


def test_features_json_records_f_max_as_capped_at_nyquist(caplog):
    from qmoe.features import mel_used

    cfg = config(MelConfig, "features.mel")
    assert mel_used(cfg, [44100, 44100])["f_max"] == 20000.0 and not caplog.text
    with caplog.at_level("WARNING"):
        used = mel_used(cfg, [8000, 8000, 0])  # 0: an image row
    assert used["f_max"] == 4000.0 and used["f_max_requested"] == 20000.0
    assert used["n_mels"] == 128
    assert (
        "features.mel.f_max 20000 Hz is above the Nyquist frequency of 8000 Hz audio: "
        "capped at 4000 Hz" in caplog.text
    )
    mixed = mel_used(cfg, [8000, 44100])
    assert mixed["f_max"] == {"8000": 4000.0, "44100": 20000.0}


def test_f_min_above_nyquist_is_a_config_error():
    with pytest.raises(
        ConfigError,
        match=r"features\.mel\.f_min 5000\.0 Hz is not below the "
        r"Nyquist frequency of 8000 Hz audio \(4000 Hz\)",
    ):
        mel_transform(config(MelConfig, "features.mel", f_min=5000.0), 8000)
