"""Transfer learning: retrain a classifier on top of a feature-vector or text-embedding module.

    from modhub.retrain import TrainConfig, retrain_images
    result = retrain_images("photos/", "modhub/mobilenet-v2-feature-vector/1", "my-classifier/")
    print(result.accuracy)

The command line is ``modhub retrain images`` / ``modhub retrain text`` / ``modhub retrain audio``.
"""

try:
    from modhub.retrain.audio import retrain_audio
    from modhub.retrain.run import RetrainResult, retrain_images, retrain_text
    from modhub.retrain.train import TrainConfig
except ImportError as exc:
    # Retraining runs on torch: without the torch extra, say so in one line.
    from modhub.errors import missing_extra

    raise (missing_extra(exc, "modhub.retrain") or exc) from None

__all__ = ["RetrainResult", "TrainConfig", "retrain_audio", "retrain_images", "retrain_text"]
