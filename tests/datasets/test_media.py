"""Decode checks of one clip or image (qmoe.datasets.media): issue 13's audio and image cases."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from qmoe.datasets.media import AudioRules, BadFile, probe_audio, probe_image

SR = 8000


def noise(seconds: float, level: float = 0.3, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (level * rng.standard_normal(int(seconds * sr))).clip(-1, 1).astype(np.float32)


def write(path: Path, x: np.ndarray, **kw) -> Path:
    sf.write(path, x, kw.pop("sr", SR), **kw)
    return path


def cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def test_a_whole_clip_passes_with_its_duration(tmp_path):
    info = probe_audio(write(tmp_path / "ok.wav", noise(0.5), subtype="PCM_16"))
    assert (info.duration_s, info.sample_rate, info.note) == (0.5, SR, "")


def test_wav_cut_in_half_is_truncated_by_its_header(tmp_path):
    wav = cut(write(tmp_path / "half.wav", noise(5.0), subtype="PCM_16"), 0.5)
    with pytest.raises(
        BadFile,
        match=r"^truncated: the WAV header declares 40000 frames "
        r"\(5\.000 s\), the file holds 19989$",
    ):
        probe_audio(wav)


def test_ogg_cut_to_a_third_is_truncated(tmp_path):
    ogg = cut(write(tmp_path / "third.ogg", noise(5.0), format="OGG", subtype="VORBIS"), 1 / 3)
    with pytest.raises(BadFile, match=r"^truncated: the Ogg page at byte \d+ needs \d+ bytes"):
        probe_audio(ogg)


def test_ogg_cut_at_a_page_boundary_lacks_the_end_of_stream_flag(tmp_path):
    ogg = write(tmp_path / "pages.ogg", noise(5.0), format="OGG", subtype="VORBIS")
    data = ogg.read_bytes()
    last_page = data.rfind(b"OggS")
    ogg.write_bytes(data[:last_page])  # drop the last page: every remaining page is whole
    with pytest.raises(BadFile, match=r"^truncated: the last Ogg page lacks the end-of-stream"):
        probe_audio(ogg)


def test_flac_cut_short_is_refused(tmp_path):
    flac = cut(write(tmp_path / "third.flac", noise(2.0), format="FLAC"), 1 / 3)
    with pytest.raises(BadFile, match=r"^(cannot decode audio|truncated)"):
        probe_audio(flac)


HEADED = [("AIFF", "aiff"), ("AU", "au")]  # formats whose header states the length
NEEDS_MP3 = pytest.mark.skipif("MP3" not in sf.available_formats(), reason="no MP3 in libsndfile")


@pytest.mark.parametrize("fmt, ext", HEADED)
def test_aiff_and_au_cut_in_half_are_truncated_by_their_header(tmp_path, fmt, ext):
    clip = cut(write(tmp_path / f"half.{ext}", noise(5.0), format=fmt, subtype="PCM_16"), 0.5)
    held = sf.info(clip).frames  # libsndfile trims its count to the data held: a shorter clip
    assert 0 < held < 40000
    with pytest.raises(BadFile) as e:
        probe_audio(clip)
    assert str(e.value) == (
        f"truncated: the {fmt} header declares 40000 frames (5.000 s), the file holds {held}"
    )


def _id3_tagged(path: Path) -> Path:
    """The clip with an ID3v2 tag in front (size 300, syncsafe) and an ID3v1 tag behind."""
    v2 = b"ID3\x03\x00\x00" + bytes([0, 0, 2, 300 - 256]) + b"\x00" * 300
    path.write_bytes(v2 + path.read_bytes() + b"TAG" + b"\x00" * 125)
    return path


@NEEDS_MP3
@pytest.mark.parametrize("tagged", [False, True])
def test_mp3_cut_mid_frame_is_truncated(tmp_path, tagged):
    """Without a Xing tag (not every encoder writes one) the frame chain runs past the end."""
    mp3 = write(tmp_path / "clip.mp3", noise(2.0, sr=22050), sr=22050, format="MP3")
    mp3.write_bytes(mp3.read_bytes().replace(b"Xing", bytes(4), 1))  # a plain first frame
    if tagged:
        _id3_tagged(mp3)
    assert probe_audio(mp3).duration_s > 0  # whole: accepted
    data = mp3.read_bytes()
    mp3.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadFile, match=r"^truncated: the MP3 frame at byte \d+ needs \d+ bytes, "):
        probe_audio(mp3)


@NEEDS_MP3
def test_mp3_cut_at_a_frame_boundary_is_truncated_by_its_xing_tag(tmp_path):
    """The frame chain ends cleanly; the Xing/Info tag LAME writes still states the size."""
    mp3 = write(tmp_path / "clip.mp3", noise(2.0, sr=22050), sr=22050, format="MP3")
    assert probe_audio(_id3_tagged(mp3)).duration_s == pytest.approx(2.0, abs=0.1)  # whole: kept
    mp3 = write(tmp_path / "clip.mp3", noise(2.0, sr=22050), sr=22050, format="MP3")
    data = mp3.read_bytes()
    last = data.rfind(data[:2])  # the last frame's header (this file has no sync in its data)
    mp3.write_bytes(data[:last])
    with pytest.raises(BadFile) as e:
        probe_audio(mp3)
    assert str(e.value) == (
        f"truncated: the MP3 header declares {len(data)} bytes, the file holds {last}"
    )


@pytest.mark.parametrize("fmt, ext", [*HEADED, ("WAV", "wav"), ("FLAC", "flac")])
def test_whole_clips_of_each_format_pass(tmp_path, fmt, ext):
    info = probe_audio(write(tmp_path / f"ok.{ext}", noise(0.5), format=fmt, subtype="PCM_16"))
    assert (info.duration_s, info.sample_rate) == (0.5, SR)


def test_one_sample_clip_is_below_the_floor(tmp_path):
    clip = write(tmp_path / "one.wav", noise(1 / SR), subtype="PCM_16")
    with pytest.raises(BadFile, match=r"^too short: 0\.0001 s < download\.min_seconds 0\.1$"):
        probe_audio(clip, AudioRules(min_seconds=0.1))
    short = write(tmp_path / "short.wav", noise(0.01), subtype="PCM_16")
    with pytest.raises(BadFile, match=r"^too short: 0\.0100 s"):
        probe_audio(short, AudioRules(min_seconds=0.1))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_are_refused_at_download(tmp_path, bad):
    x = noise(1.0)
    x[5000] = bad
    clip = write(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(BadFile, match=r"^NaN or infinite samples near 0\.000 s$"):
        probe_audio(clip)


def test_silence_is_flagged_or_refused(tmp_path):
    clip = write(tmp_path / "quiet.wav", np.zeros(SR, dtype=np.float32), subtype="PCM_16")
    info = probe_audio(clip)
    assert info.note == "silent: peak -inf dBFS < download.silence_dbfs -80"
    with pytest.raises(BadFile, match=r"^silent: peak -inf dBFS"):
        probe_audio(clip, AudioRules(silent_is_bad=True))


def test_a_defined_clip_format_is_enforced(tmp_path):
    rules = AudioRules(sample_rate=44100, channels=1, frames=220500)  # ESC-50
    with pytest.raises(BadFile, match=r"^sample rate 8000, expected 44100$"):
        probe_audio(write(tmp_path / "a.wav", noise(0.1)), rules)
    stereo = np.stack([noise(0.1, sr=44100)] * 2, axis=1)
    with pytest.raises(BadFile, match=r"^channels 2, expected 1$"):
        probe_audio(write(tmp_path / "b.wav", stereo, sr=44100), rules)
    with pytest.raises(BadFile, match=r"^frames 4410, expected 220500$"):
        probe_audio(write(tmp_path / "c.wav", noise(0.1, sr=44100), sr=44100), rules)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is never read)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 9))
        + chunk(b"IEND", b"")
    )


def test_huge_image_is_refused_before_decoding(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_header(20000, 20000))  # 400 M pixels: Pillow's own limit stops it
    with pytest.raises(BadFile, match=r"^image too large, not decoded: Image size \(400000000 "):
        probe_image(big)
    wide = tmp_path / "wide.png"
    wide.write_bytes(png_header(10000, 6000))  # 60 M pixels: below Pillow's limit, above ours
    with pytest.raises(
        BadFile,
        match=r"^image of 10000 x 6000 pixels exceeds "
        r"download\.max_image_pixels 50,000,000; not decoded$",
    ):
        probe_image(wide)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((4, 6, 3), dtype=np.uint8)).save(small)
    assert probe_image(small, max_pixels=24).sample_rate == 0
    with pytest.raises(BadFile, match=r"^image of 6 x 4 pixels exceeds"):
        probe_image(small, max_pixels=23)
