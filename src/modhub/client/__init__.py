"""The hub client: JSON API wrapper (``api``), local cache (``cache``), downloads and ``resolve``."""
