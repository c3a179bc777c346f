"""Batch prediction: run a module over many inputs and write one Parquet row per input.

    from modhub.predict import predict
    result = predict("modhub/minilm-l6/1", "texts.txt", "embeddings.parquet")

See :mod:`modhub.predict.runner` for the inputs it reads and the columns it writes.
"""

from __future__ import annotations

from modhub.predict.runner import PredictResult, predict

__all__ = ["PredictResult", "predict"]
