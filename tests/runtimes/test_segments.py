"""Long sound in segments (``TensorSpec.segment``): a clip longer than the input's segment is
run one segment at a time, with each frame's context either side, and the per-frame outputs
equal one call on the whole clip while memory stays that of one segment."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import modhub as hub
from modhub.errors import ManifestError

RATE, HOP, LENGTH = 16000, 32, 128  # samples: 2 ms frames, each seeing 8 ms (centred)


class _Framer(nn.Module):
    """Per-frame scores [batch, frames, 4] from centred 96-sample windows every 32 samples, after
    a wide per-sample layer (``width`` channels: memory grows with the clip's length)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.wide = nn.Conv1d(1, width, 3, padding=1)
        self.frames = nn.Conv1d(width, 4, 96, stride=HOP, padding=48)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.frames(torch.relu(self.wide(waveform.unsqueeze(1))))).transpose(1, 2)


def _export(where: Path, segment: float | None, width: int = 8, outputs: dict | None = None) -> Path:
    torch.manual_seed(0)
    audio: dict = {"kind": "audio", "sample_rate": RATE}
    if segment is not None:
        audio["segment"] = segment
    meaning = {"waveform": audio, "scores": {"frame_hop": HOP / RATE, "frame_length": LENGTH / RATE}}
    return hub.export(
        _Framer(width).eval(),
        torch.rand(2, 640) * 2 - 1,
        where,
        task="other",
        license="MIT",
        onnx=True,
        output_names=["scores"],
        dynamic={"waveform": {0: "batch", 1: "samples"}},
        meaning={**meaning, **(outputs or {})},
    )


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_segments_give_the_frames_of_one_call(tmp_path: Path, runtime: str) -> None:
    whole = hub.load(_export(tmp_path / "whole", None), runtime=runtime, output="numpy")
    cut = hub.load(_export(tmp_path / "cut", 0.05), runtime=runtime, output="numpy")  # 800 samples
    rng = np.random.default_rng(0)
    for samples in (8000 * 3 + 17, 801, 800, 512):  # many segments, a sliver over, exactly one, less
        clip = (rng.random((2, samples)) * 2 - 1).astype(np.float32)
        want, got = whole(clip), cut(clip)
        assert got.shape == want.shape == (2, samples // HOP + 1, 4)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_a_segment_that_cannot_be_honoured_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="too short"):
        hub.load(_export(tmp_path / "short", 0.01), runtime="onnx")(np.zeros((1, 4000), np.float32))


_PEAK = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import modhub as hub

    def status(field):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":")) / 1024

    module = hub.load(sys.argv[1], runtime="onnx", output="numpy")
    clip = np.zeros((1, 16000 * 60), np.float32)
    module(clip[:, :16000])
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets the peak (VmHWM) to the current resident size
    before = status("VmRSS")
    out = module(clip)
    print(json.dumps({"frames": out.shape[1], "grew_mb": status("VmHWM") - before}))
    """
)


def _peak(module: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(module)], capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc"
)
def test_memory_stays_that_of_one_segment(tmp_path: Path) -> None:
    # 60 s through a 32-channel per-sample layer: ~120 MB per intermediate in one call.
    whole = _peak(_export(tmp_path / "whole", None, width=32))
    cut = _peak(_export(tmp_path / "cut", 1.0, width=32))
    assert whole["frames"] == cut["frames"] == 16000 * 60 // HOP + 1
    assert whole["grew_mb"] > 60, whole  # the one call does hold the whole clip's intermediates
    assert cut["grew_mb"] < 25, cut
