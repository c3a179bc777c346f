"""Transfer learning: retrain a classifier on top of a feature-vector or text-embedding module.

    from modhub.retrain import TrainConfig, retrain_images
    result = retrain_images("photos/", "modhub/mobilenet-v2-feature-vector/1", "my-classifier/")
    print(result.accuracy)

The command line is ``modhub retrain images`` / ``modhub retrain text``.
"""

from modhub.retrain.run import RetrainResult, retrain_images, retrain_text
from modhub.retrain.train import TrainConfig

__all__ = ["RetrainResult", "TrainConfig", "retrain_images", "retrain_text"]
