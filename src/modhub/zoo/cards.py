"""Model-card bodies for the starter modules (the front matter comes from the manifest)."""

from __future__ import annotations

from dataclasses import dataclass

PUBLISHER = "modhub"


def handle_of(name: str) -> str:
    return f"{PUBLISHER}/{name}/1"


def link_to(name: str) -> str:
    """Markdown link to a module's page on the same hub (absolute path, any host)."""
    return f"[{handle_of(name)}](/{handle_of(name)})"


@dataclass(frozen=True)
class CardInfo:
    """What a starter module's README says, section by section (Markdown allowed)."""

    title: str
    what: str
    weights: str
    license: str
    intended_use: str
    limitations: str
    usage: str
    verification: str
    references: tuple[str, ...] = ()


def render_body(info: CardInfo) -> str:
    parts = [
        f"# {info.title}",
        "",
        info.what,
        "",
        "## Where the weights come from",
        "",
        info.weights,
        "",
        "## Licence",
        "",
        info.license,
        "",
        "## Intended use",
        "",
        info.intended_use,
        "",
        "## Limitations",
        "",
        info.limitations,
        "",
        "## Usage",
        "",
        "```python",
        info.usage.strip(),
        "```",
        "",
        "## Verification",
        "",
        info.verification,
    ]
    if info.references:
        parts += ["", "## References", ""] + [f"- {ref}" for ref in info.references]
    return "\n".join(parts) + "\n"


IMAGE_LOADING = '''\
import numpy as np
import torch
from PIL import Image

import modhub as hub


def load_image(path, size):
    """Resize the shorter side to size/0.875, centre-crop size x size, RGB in [0, 1]."""
    image = Image.open(path).convert("RGB")
    scale = round(size / 0.875) / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)

'''
