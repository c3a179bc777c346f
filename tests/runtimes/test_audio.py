"""Sound in: files, bytes and waveforms become the module's mono waveform; bad audio is an InputError."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from modhub.errors import InputError
from modhub.format.manifest import TensorSpec
from modhub.runtimes.audio import MAX_AUDIO_SECONDS, prepare_audio

RATE = 16000
BATCHED = TensorSpec(
    name="waveform", dtype="float32", shape=("batch", "samples"), kind="audio", sample_rate=RATE
)
SINGLE = TensorSpec(name="waveform", dtype="float32", shape=("samples",), kind="audio", sample_rate=RATE)


def _sine(frequency: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * t)
    return np.stack([tone] * channels, axis=1) if channels > 1 else tone


def _wav(samples: np.ndarray, rate: int, width: int = 2) -> bytes:
    """PCM WAV written by the stdlib (not by the decoder under test)."""
    data = np.atleast_2d(samples.T).T
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(data.shape[1])
        out.setsampwidth(width)
        out.setframerate(rate)
        if width == 1:
            out.writeframes((data * 127 + 128).astype(np.uint8).tobytes())
        else:
            out.writeframes((data * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def _peak_hz(waveform: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()])


def test_wav_bytes_and_path_are_resampled_and_mixed_to_mono(tmp_path: Path) -> None:
    stereo = _sine(440, 44100, 0.5, channels=2)
    data = _wav(stereo, 44100)
    (tmp_path / "a.wav").write_bytes(data)
    from_bytes = prepare_audio(data, BATCHED)
    from_path = prepare_audio(tmp_path / "a.wav", BATCHED)
    assert from_bytes.shape == (1, RATE // 2) and from_bytes.dtype == np.float32
    np.testing.assert_array_equal(from_bytes, from_path)
    assert abs(_peak_hz(from_bytes[0], RATE) - 440) <= 2
    assert 0.45 < np.abs(from_bytes).max() < 0.55


def test_flac_is_decoded(tmp_path: Path) -> None:
    import soundfile

    soundfile.write(tmp_path / "a.flac", _sine(1000, 22050, 0.25), 22050, format="FLAC")
    out = prepare_audio(str(tmp_path / "a.flac"), SINGLE)
    assert out.shape == (RATE // 4,)
    assert abs(_peak_hz(out, RATE) - 1000) <= 4


def test_waveform_with_rate_in_any_channel_order_and_integer_scale() -> None:
    tone = _sine(300, 8000, 0.5)
    channels_first = np.stack([tone, tone]).astype(np.float32)  # [2, samples]
    ints = (tone * 32767).astype(np.int16)
    a = prepare_audio((channels_first, 8000), BATCHED)
    b = prepare_audio((channels_first.T, 8000), BATCHED)
    c = prepare_audio((ints, 8000), BATCHED)
    assert a.shape == b.shape == c.shape == (1, RATE // 2)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-3)


def test_a_list_is_a_batch_of_equal_length_clips() -> None:
    tone = _sine(440, RATE, 0.1).astype(np.float32)
    batch = prepare_audio([(tone, RATE), _wav(tone, RATE)], BATCHED)
    assert batch.shape == (2, len(tone))
    with pytest.raises(InputError, match="different lengths"):
        prepare_audio([(tone, RATE), (tone[:100], RATE)], BATCHED)
    with pytest.raises(InputError, match="one clip per call"):
        prepare_audio([(tone, RATE), (tone, RATE)], SINGLE)


def _lying_header(data: bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, 40, 0x7FFFFFF0)  # the data chunk claims ~2 GB
    return bytes(out)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "empty"),
        (b"this is not a sound file" * 50, "not a sound file"),
        (_wav(np.zeros(0), RATE), "no samples"),
        (_lying_header(_wav(_sine(440, RATE, 0.1), RATE)), "header promises"),
        ((np.zeros(100), 0), "sample rate"),
        ((np.zeros(100), 16000.5), "whole number"),
        ((np.full(100, np.nan), RATE), "NaN"),
        ((np.zeros((20, 20)), RATE), "channels"),
        ((np.zeros(0), RATE), "empty"),
        (12, "expected"),
    ],
)
def test_bad_audio_is_an_input_error(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        prepare_audio(value, BATCHED)


def test_ten_hours_is_refused_from_the_header_before_decoding(tmp_path: Path) -> None:
    # 10 hours at 8 Hz (a real, tiny file): refused by duration, never decoded into memory.
    ten_hours = _wav(np.zeros(8 * 36000), 8, width=1)
    (tmp_path / "long.wav").write_bytes(ten_hours)
    for value in (ten_hours, tmp_path / "long.wav"):
        with pytest.raises(InputError, match=f"more than modhub decodes at once \\({MAX_AUDIO_SECONDS} s\\)"):
            prepare_audio(value, BATCHED)
    with pytest.raises(InputError, match="split it"):
        prepare_audio((np.zeros(RATE * MAX_AUDIO_SECONDS + 1, np.float32), RATE), BATCHED)


def test_paths_must_be_regular_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a regular file"):
        prepare_audio("/dev/zero", BATCHED)
    with pytest.raises(InputError, match="cannot read"):
        prepare_audio(tmp_path / "missing.wav", BATCHED)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        prepare_audio(tmp_path / "empty.wav", BATCHED)
