"""Sample sounds of the "try it" panel's audio tasks, made at serve time, never stored in the repository.

Speech comes from Debian's ``espeak-ng`` when it is installed (the same voices modhub's audio
tests use); the tones are numpy sines. ``/static/tryit/samples/<name>.wav`` serves them
(server/web/vendor.py); a sound that cannot be made here (no espeak-ng) answers 404.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from functools import cache

import numpy as np

__all__ = ["SAMPLE_SOUNDS", "sample_sound"]

# name -> (espeak-ng voice, words) for speech, or notes (Hz, seconds) for tones.
_SPEECH: dict[str, tuple[str, str]] = {
    "speech": ("en-us", "Try this module in your browser. It runs on your own computer."),
    "hey-jarvis-1": ("en-us", "hey jarvis"),
    "hey-jarvis-2": ("en-gb+f3", "hey jarvis"),
    "good-morning-1": ("en-us", "good morning"),
}
_TONES: dict[str, tuple[tuple[float, float], ...]] = {
    "tone-440": ((440.0, 2.0),),
    "melody": ((220.0, 0.5), (277.18, 0.5), (329.63, 0.5), (440.0, 0.5)),
}
SAMPLE_SOUNDS = frozenset(_SPEECH) | frozenset(_TONES)
# Tones are written at CD rate, so that the browser resamples them as it would a visitor's file.
_TONE_RATE = 44100


def _wav(samples: np.ndarray, rate: int) -> bytes:
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    return _pcm_wav(pcm.tobytes(), rate)


def _pcm_wav(pcm: bytes, rate: int) -> bytes:
    """Mono 16-bit PCM as a WAV file with true chunk sizes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def _tone(notes: tuple[tuple[float, float], ...]) -> bytes:
    parts = []
    for hz, seconds in notes:
        n = round(seconds * _TONE_RATE)
        i = np.arange(n)
        fade = np.minimum(1.0, np.minimum(i, n - i) / (_TONE_RATE / 100))  # 10 ms ramps: no clicks
        parts.append(0.5 * fade * np.sin(2 * np.pi * hz * i / _TONE_RATE))
    return _wav(np.concatenate(parts), _TONE_RATE)


@cache
def sample_sound(name: str) -> bytes | None:
    """The WAV bytes of sample ``name`` (one of :data:`SAMPLE_SOUNDS`), None when it cannot be made."""
    if name in _TONES:
        return _tone(_TONES[name])
    if name not in _SPEECH:
        return None
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return None
    voice, words = _SPEECH[name]
    try:
        done = subprocess.run(
            [espeak, "-v", voice, "-s", "150", "--stdout", words], capture_output=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return _rewrap(done.stdout)


def _rewrap(stream: bytes) -> bytes | None:
    """espeak-ng's --stdout WAV (mono 16-bit, its sizes left at 0x7fffffff as for a stream) with
    its true sizes: modhub's own reader refuses a header that promises more than the file holds."""
    start = stream.find(b"data", 12)
    if not stream.startswith(b"RIFF") or stream[8:16] != b"WAVEfmt " or start < 0:
        return None
    channels, rate, bits = (int.from_bytes(stream[a:b], "little") for a, b in ((22, 24), (24, 28), (34, 36)))
    if channels != 1 or bits != 16:
        return None
    pcm = stream[start + 8 :]
    return _pcm_wav(pcm[: len(pcm) - len(pcm) % 2], rate)
