"""Sound in: turn what a user has (a WAV/FLAC file or its bytes, a waveform with its sample rate)
into the float32 mono waveform at the module's rate that an audio module's graph takes.

An audio input (a ``TensorSpec`` with ``kind="audio"``) accepts, besides arrays already at the
module's rate:

- a file path (``str`` or ``os.PathLike``) or the file's bytes: WAV (PCM 8/16/24/32-bit, float),
  FLAC, and whatever else libsndfile decodes (OGG/Vorbis, AIFF, ...);
- a tuple ``(waveform, sample_rate)``: a numpy array (or anything ``np.asarray`` takes) shaped
  ``[samples]``, ``[samples, channels]`` (soundfile's order) or ``[channels, samples]`` (up to 8
  channels); integer samples are scaled to [-1, 1] (int16 by 32768, ...);
- a list of these (a batch): each is converted, and they must end up the same length.

Channels are averaged to mono; the rate is converted with libsoxr (``soxr``, "HQ" quality).

Decoding uses ``soundfile`` (libsndfile, bundled in its wheels): one maintained decoder for WAV
and FLAC alike, which reads a file's header before any sample and decodes at most the frames
asked for. The stdlib ``wave`` module reads PCM WAV only (no float WAV, no FLAC).

Bounds: a clip is decoded only up to :data:`MAX_AUDIO_SECONDS` (the one cap: an hour of sound,
checked from the header and enforced while reading, so a header that lies about its length
changes nothing); longer clips, empty clips, files that are not sound and non-finite samples are
an ``InputError`` that says what to do. Bytes given in memory are capped at
:data:`MAX_AUDIO_BYTES`. Paths must name regular files (never a FIFO or device that could block).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modhub.errors import InputError, require

if TYPE_CHECKING:
    from modhub.format.manifest import TensorSpec

__all__ = [
    "AUDIO_SUFFIXES",
    "MAX_AUDIO_BYTES",
    "MAX_AUDIO_SECONDS",
    "load_audio",
    "prepare_audio",
    "to_mono",
]

# The longest clip decoded, in seconds of sound (at any rate). An hour at 16 kHz is 230 MB of
# float32; at 48 kHz stereo the decoded source is 1.4 GB before it is mixed and resampled.
MAX_AUDIO_SECONDS = 3600
# The largest encoded clip accepted as bytes: an hour of 16-bit 48 kHz stereo WAV is 660 MB.
MAX_AUDIO_BYTES = 1 << 30
# Highest sample rate accepted (DXD / 384 kHz studio audio).
MAX_SAMPLE_RATE = 384_000
# The most channels a waveform array may have (7.1 surround).
MAX_CHANNELS = 8
# Bytes read to find a WAV's data chunk (its header and the chunks before the sound).
_RIFF_PROBE = 64 << 10
# File suffixes read as sound in folders (retraining, batch prediction).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".aiff", ".aif"})

_ACCEPTED = (
    "a WAV/FLAC file path or its bytes, a tuple (waveform, sample_rate), a float32 waveform array "
    "already at the module's rate, or a list of these"
)


def prepare_audio(value: Any, spec: TensorSpec) -> np.ndarray:
    """``value`` as the float32 waveform(s) ``spec`` takes: mono, at ``spec.sample_rate``.

    Returns ``[samples]`` when ``spec.shape`` has one dimension, else ``[batch, samples]``
    (a single clip is a batch of one). Raises InputError for anything else.
    """
    rate = spec.sample_rate
    if rate is None:
        raise InputError(f"input {spec.name!r} is audio but its module declares no sample_rate")
    if isinstance(value, list):
        if not value:
            raise InputError(f"input {spec.name!r}: the list of clips is empty; pass {_ACCEPTED}")
        clips = [_one(item, rate, f"{spec.name}[{i}]") for i, item in enumerate(value)]
    else:
        clips = [_one(value, rate, spec.name)]
    if len(spec.shape) == 1:
        if len(clips) != 1:
            raise InputError(f"input {spec.name!r} takes one clip per call, got {len(clips)}")
        return clips[0]
    lengths = sorted({len(c) for c in clips})
    if len(lengths) > 1:
        raise InputError(
            f"input {spec.name!r}: the clips have different lengths ({lengths[0]} to {lengths[-1]} samples "
            f"at {rate} Hz); call the module once per clip (or pad them to one length yourself)"
        )
    return np.stack(clips)


def load_audio(source: str | os.PathLike[str] | bytes, rate: int, what: str = "audio") -> np.ndarray:
    """Decode a sound file (path or bytes) to a float32 mono waveform at ``rate`` Hz."""
    waveform, source_rate = _decode(source, what)
    return _convert(waveform, source_rate, rate, what)


def _one(value: Any, rate: int, what: str) -> np.ndarray:
    if isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview)):
        return load_audio(bytes(value) if isinstance(value, (bytearray, memoryview)) else value, rate, what)
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InputError(f"{what}: a tuple must be (waveform, sample_rate), got {len(value)} items")
        waveform, source_rate = value
        return _convert(_as_array(waveform, what), _check_rate(source_rate, what), rate, what)
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        # An array in a list is taken as already at the module's rate, as a bare array is.
        return _convert(_as_array(value, what), rate, rate, what)
    raise InputError(f"{what}: expected {_ACCEPTED}; got {type(value).__name__}")


def _check_rate(rate: Any, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        if isinstance(rate, float) and rate.is_integer():
            rate = int(rate)
        else:
            raise InputError(f"{what}: the sample rate must be a whole number of Hz, got {rate!r}")
    if not 1 <= int(rate) <= MAX_SAMPLE_RATE:
        raise InputError(f"{what}: sample rate {rate} Hz is outside 1..{MAX_SAMPLE_RATE}")
    return int(rate)


def _as_array(waveform: Any, what: str) -> np.ndarray:
    if hasattr(waveform, "detach"):  # a torch tensor
        waveform = waveform.detach().cpu().numpy()
    try:
        array = np.asarray(waveform)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: the waveform cannot be made an array ({exc})") from None
    if array.dtype.kind not in "fiu" or array.dtype.itemsize > 8:
        raise InputError(f"{what}: the waveform must hold numbers, got dtype {array.dtype}")
    return array


def to_mono(array: np.ndarray, what: str = "audio") -> np.ndarray:
    """[samples], [samples, channels] or [channels, samples] -> float32 [samples] in [-1, 1] scale."""
    if array.ndim == 2:
        # The channel axis is the short one (at most MAX_CHANNELS); soundfile's [samples, channels]
        # wins a tie.
        if array.shape[1] <= MAX_CHANNELS:
            array = array.mean(axis=1, dtype=np.float64) if array.shape[1] > 1 else array[:, 0]
        elif array.shape[0] <= MAX_CHANNELS:
            array = array.mean(axis=0, dtype=np.float64) if array.shape[0] > 1 else array[0]
        else:
            raise InputError(
                f"{what}: a 2-D waveform must be [samples, channels] or [channels, samples] with at most "
                f"{MAX_CHANNELS} channels, got shape {list(array.shape)}"
            )
    elif array.ndim != 1:
        raise InputError(f"{what}: a waveform must be [samples] or [samples, channels], got {array.ndim}-D")
    return _scale(array)


def _scale(array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if kind == "i":
        return (array.astype(np.float64) / float(2 ** (8 * array.dtype.itemsize - 1))).astype(np.float32)
    if kind == "u":
        half = float(2 ** (8 * array.dtype.itemsize - 1))
        return ((array.astype(np.float64) - half) / half).astype(np.float32)
    return array.astype(np.float32, copy=False)


def _convert(array: np.ndarray, source_rate: int, rate: int, what: str) -> np.ndarray:
    mono = to_mono(array, what)
    if mono.size == 0:
        raise InputError(f"{what}: the clip is empty (no samples)")
    seconds = mono.size / source_rate
    if seconds > MAX_AUDIO_SECONDS:
        raise _too_long(what, seconds)
    if not np.isfinite(mono).all():
        raise InputError(f"{what}: the waveform holds NaN or infinite samples")
    if source_rate != rate:
        soxr = require("soxr", "resampling audio")
        mono = soxr.resample(mono, source_rate, rate, quality="HQ").astype(np.float32, copy=False)
        if mono.size == 0:
            raise InputError(f"{what}: the clip is shorter than one sample at {rate} Hz")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _too_long(what: str, seconds: float) -> InputError:
    return InputError(
        f"{what}: the clip lasts {seconds:.0f} s, more than modhub decodes at once ({MAX_AUDIO_SECONDS} s); "
        "split it into shorter clips (e.g. with soundfile.blocks or sox) and call the module per clip"
    )


def _decode(source: str | os.PathLike[str] | bytes, what: str) -> tuple[np.ndarray, int]:
    soundfile = require("soundfile", "reading sound files")
    if isinstance(source, bytes):
        if not source:
            raise InputError(f"{what}: the sound file is empty (0 bytes)")
        if len(source) > MAX_AUDIO_BYTES:
            raise InputError(
                f"{what}: {len(source) >> 20} MB of sound is more than modhub reads at once "
                f"({MAX_AUDIO_BYTES >> 20} MB); split the recording into shorter clips"
            )
        handle: Any = io.BytesIO(source)
        name = "the data"
        _check_riff(source[:_RIFF_PROBE], len(source), what, name)
    else:
        path = Path(source)
        name = str(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            raise InputError(f"{what}: cannot read {name}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{what}: {name} is not a regular file")
        if info.st_size == 0:
            raise InputError(f"{what}: {name} is empty (0 bytes)")
        handle = path
        try:
            with open(path, "rb") as file:
                head = file.read(_RIFF_PROBE)
        except OSError as exc:
            raise InputError(f"{what}: cannot read {name}: {exc.strerror or exc}") from None
        _check_riff(head, info.st_size, what, name)
    try:
        with soundfile.SoundFile(handle) as sound:
            rate = int(sound.samplerate)
            if not 1 <= rate <= MAX_SAMPLE_RATE:
                raise InputError(f"{what}: {name} says its sample rate is {rate} Hz; it is not a usable clip")
            if sound.channels > 64:
                raise InputError(
                    f"{what}: {name} says it has {sound.channels} channels; it is not a usable clip"
                )
            limit = MAX_AUDIO_SECONDS * rate
            declared = sound.frames
            if declared > limit:
                raise _too_long(what, declared / rate)
            # Read at most one frame past the cap, whatever the header said.
            data = sound.read(frames=min(declared, limit) + 1 if declared > 0 else limit + 1, dtype="float32")
    except InputError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(
            f"{what}: {name} is not a sound file modhub can decode ({_short(exc)}); give a WAV or FLAC file"
        ) from None
    if data.shape[0] > limit:
        raise _too_long(what, data.shape[0] / rate)
    if data.shape[0] == 0:
        raise InputError(f"{what}: {name} holds no samples")
    return data, rate


def _check_riff(head: bytes, size: int, what: str, name: str) -> None:
    """A WAV whose header claims more sound than the file holds is refused (libsndfile would
    quietly read what is there): the file is truncated, or its header lies."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            # 0 and 0xFFFFFFFF mark a stream written before its length was known.
            if length not in (0, 0xFFFFFFFF) and pos + 8 + length > size:
                raise InputError(
                    f"{what}: {name} is a WAV whose header promises {length} bytes of sound but holds "
                    f"{max(size - pos - 8, 0)}; the file is truncated or its header is wrong (re-encode it)"
                )
            return
        pos += 8 + length + (length & 1)


def _short(exc: BaseException) -> str:
    # libsndfile's "Error opening <object at 0x...>: Format not recognised." -> the reason only.
    text = str(exc).strip().rsplit(": ", 1)[-1] or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
