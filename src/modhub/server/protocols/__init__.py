"""The other clients' protocols the hub speaks besides its own ``/api/v1/``.

- ``tfhub``: tensorflow_hub's ``GET /<publisher>/<name>/<version>?tf-hub-format=compressed``.
- ``hf``: the read side of the Hugging Face Hub API (``huggingface_hub`` with ``HF_ENDPOINT``).
- ``tfjs``: TF.js's ``GET /<publisher>/<name>/<version>/model.json?tfjs-format=file`` and shards.

All find modules only through :mod:`modhub.server.protocols.lookup`.
"""
