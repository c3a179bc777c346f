"""The audio and multilingual starters on real input: espeak-ng speech, sines, translations."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

# Needs the real starter modules: built once (minutes), then reused from the zoo cache.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken English sentence as a 22.05 kHz WAV, made by Debian's espeak-ng (.ci/run installs it)."""
    espeak = shutil.which("espeak-ng")
    assert espeak is not None, "these tests need espeak-ng: apt-get install espeak-ng"
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    text = "Turn on the lights in the kitchen, then play some music please."
    subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(path), text], check=True, timeout=60)
    return path


def _sine(frequency: float, rate: int, seconds: float) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


@pytest.fixture(scope="module")
def load(zoo_dir: Path):  # type: ignore[no-untyped-def]
    import modhub as hub

    def open_(name: str):  # type: ignore[no-untyped-def]
        return hub.load(zoo_dir / name, output="numpy")

    return open_


def test_silero_separates_speech_from_a_sine(load, speech: Path) -> None:  # type: ignore[no-untyped-def]
    vad = load("silero-vad")
    on_speech = np.asarray(vad(speech))[0, :, 0]
    on_sine = np.asarray(vad((_sine(440, 44100, 2.0), 44100)))[0, :, 0]
    # One score per 32 ms chunk of the clip at 16 kHz.
    assert on_sine.shape == (2 * 16000 // 512 + 1,)
    assert (on_speech > 0.5).mean() > 0.6
    assert (on_sine > 0.5).mean() == 0.0
    assert vad.manifest.signature().outputs[0].frame_hop == pytest.approx(0.032)


def test_crepe_reads_a_440_hz_sine(load) -> None:  # type: ignore[no-untyped-def]
    crepe = load("crepe-pitch")
    out = crepe((_sine(440, 48000, 1.0), 48000))
    pitch, confidence = np.asarray(out["pitch"])[0], np.asarray(out["confidence"])[0]
    assert pitch.shape == confidence.shape == (101,)  # every 10 ms, centred frames
    inner = slice(5, -5)
    assert abs(float(np.median(pitch[inner])) - 440.0) <= 5.0
    assert float(np.median(confidence[inner])) > 0.5


def test_speech_embedding_frames(load, speech: Path) -> None:  # type: ignore[no-untyped-def]
    embed = load("speech-embedding")
    frames = np.asarray(embed(speech))
    import soundfile

    seconds = soundfile.info(str(speech)).duration
    samples = round(seconds * 16000)
    assert frames.shape == (1, 1 + (samples - 12512) // 1280, 96)
    # Short clips still give one frame (zero-padded to 0.78 s).
    assert np.asarray(embed((_sine(300, 16000, 0.2), 16000))).shape == (1, 1, 96)
    # Speech and a sine are far apart; two halves of the speech are close.
    clip = frames[0].mean(0)
    half = frames[0, : frames.shape[1] // 2].mean(0)
    tone = np.asarray(embed((_sine(300, 16000, 2.0), 16000)))[0].mean(0)

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cos(clip, half) > cos(clip, tone)


def test_use_multilingual_puts_a_translation_closest(load) -> None:  # type: ignore[no-untyped-def]
    use = load("use-multilingual")
    english, french, unrelated = np.asarray(
        use(
            [
                "The weather is lovely today, let's go for a walk in the park.",
                "Il fait très beau aujourd'hui, allons nous promener dans le parc.",
                "The quarterly report shows a decline in industrial production.",
            ]
        )
    )
    assert english.shape == (512,)
    np.testing.assert_allclose(np.linalg.norm(english), 1.0, atol=1e-5)
    assert english @ french > english @ unrelated + 0.2


@pytest.mark.parametrize("name", ["speech-embedding", "silero-vad", "crepe-pitch"])
def test_onnx_runtime_equals_torch_runtime_on_speech(zoo_dir: Path, speech: Path, name: str) -> None:
    import modhub as hub

    on_onnx = hub.load(zoo_dir / name, runtime="onnx", output="numpy")
    on_torch = hub.load(zoo_dir / name, runtime="torch", output="numpy")
    got, expected = on_onnx(speech), on_torch(speech)
    pairs = [(got[k], expected[k]) for k in expected] if isinstance(expected, dict) else [(got, expected)]
    for a, b in pairs:
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape
        # pitch is in Hz (hundreds): compare relative to the values.
        assert float(np.abs(a - b).max()) <= 1e-4 * max(1.0, float(np.abs(b).max()))
