"""`retrain audio`: a folder of clips per class, a tiny audio-embedding module, a module out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modhub.errors import InputError

RATE = 16000


class TinyBatchedEmbedder(nn.Module):
    """waveform [batch, samples] -> embeddings [batch, frames, 8]: a learned 32-sample filter bank."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 8, 32, stride=32)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(waveform.unsqueeze(1))).abs().transpose(1, 2)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import modhub as hub

    return hub.export(
        TinyBatchedEmbedder().eval(),
        (torch.rand(2, 640) * 2 - 1,),
        tmp_path_factory.mktemp("modules") / "tiny-audio",
        task="audio-embedding",
        license="MIT",
        input_names=["waveform"],
        output_names=["embeddings"],
        dynamic={"waveform": {0: "batch", 1: "samples"}},
        meaning={
            "waveform": {"kind": "audio", "sample_rate": RATE},
            "embeddings": {"kind": "embedding", "frame_hop": 32 / RATE},
        },
        metadata={"title": "Tiny audio", "tags": ["test"]},
    )


def _clips(root: Path, per_class: int = 6) -> Path:
    """Two classes of noisy tones (low, high), as WAV and FLAC at 22.05 kHz, of several lengths."""
    import soundfile

    rng = np.random.default_rng(0)
    for name, frequency in (("low", 300.0), ("high", 3000.0)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            t = np.arange(int(22050 * (0.2 + 0.05 * i))) / 22050
            clip = 0.4 * np.sin(2 * np.pi * frequency * (1 + 0.02 * i) * t) + 0.05 * rng.standard_normal(
                len(t)
            )
            suffix = "flac" if i % 2 else "wav"
            soundfile.write(folder / f"{i}.{suffix}", clip.astype(np.float32), 22050)
        (folder / "notes.txt").write_text("not a clip")
    return root


def test_retrain_audio_writes_a_classifier_that_takes_sound_files(embedder: Path, tmp_path: Path) -> None:
    import modhub as hub
    from modhub.retrain import retrain_audio
    from modhub.settings import Settings

    data = _clips(tmp_path / "data")
    settings = Settings(cache=tmp_path / "cache")
    result = retrain_audio(data, embedder, tmp_path / "out", settings=settings, progress=False)
    assert result.accuracy >= 0.9
    assert result.report["task"] == "audio-command-detection"
    assert result.report["features"]["extracted"] == 12
    classifier = hub.load(tmp_path / "out", output="numpy")
    assert classifier.labels == ["high", "low"]
    logits = np.asarray(classifier(data / "low" / "0.wav"))
    assert logits.shape == (1, 2)
    assert classifier.labels[int(logits.argmax())] == "low"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "A sound classifier for 2 classes, made with `modhub retrain audio`" in card
    # A second run reads every clip's features from the cache.
    again = retrain_audio(data, embedder, tmp_path / "out2", settings=settings, progress=False)
    assert again.extracted == 0


def test_retrain_audio_refuses_what_it_cannot_train_on(embedder: Path, tmp_path: Path) -> None:
    from modhub.retrain import TrainConfig, retrain_audio
    from modhub.settings import Settings

    settings = Settings(cache=tmp_path / "cache")
    data = _clips(tmp_path / "data", per_class=2)
    with pytest.raises(InputError, match="drop --fine-tune"):
        retrain_audio(data, embedder, tmp_path / "o1", config=TrainConfig(fine_tune=True), settings=settings)
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(InputError, match="at least 2 classes"):
        retrain_audio(tmp_path / "one", embedder, tmp_path / "o2", settings=settings)
    (tmp_path / "data" / "silent").mkdir()
    with pytest.raises(InputError, match="without sound files"):
        retrain_audio(data, embedder, tmp_path / "o3", settings=settings)
