"""Fenced code blocks of the Markdown docs, and what the docs test does with each.

Every fence must name its language, so that running or not running a block is
always a visible decision:

* ``python``: pasted, line by line, into one Python REPL per file (see kernel.py);
* ``sh`` / ``bash`` / ``shell``: run by ``bash -e -o pipefail``; ``console``: the
  lines starting with ``$ `` are the commands, the others are their output;
* ``js`` / ``javascript``: an ES module, run by Node.js (see test_docs.py);
* ``text``, ``json``, ``yaml``, ``ini``, ``toml``, ``markdown``, ``http``, ``html``: shown, not run;
* a shown block tagged ``output`` (```` ```text output ````) is what the runnable block
  above it prints; its words (not its numbers) must appear in that output;
* a runnable block whose info string carries the tag ``skip-test`` is not run. It
  must sit right under an HTML comment ``<!-- skip-test: why -->`` giving the
  reason; the test counts these and keeps them few.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"sh", "bash", "shell", "console"})
JS = frozenset({"js", "javascript"})
SHOWN = frozenset({"text", "json", "yaml", "ini", "toml", "markdown", "md", "http", "csv", "html"})
SKIP_TAG = "skip-test"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_SKIP_REASON = re.compile(r"^\s*<!--\s*skip-test:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    # 1-based line of the opening fence.
    line: int
    lang: str
    tags: tuple[str, ...]
    code: str
    # From the `<!-- skip-test: ... -->` comment above the fence, if any.
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in PYTHON or self.lang in SHELL or self.lang in JS

    @property
    def skipped(self) -> bool:
        return SKIP_TAG in self.tags

    def shell_script(self) -> str:
        if self.lang != "console":
            return self.code
        return "\n".join(line[2:] for line in self.code.splitlines() if line.startswith("$ ")) + "\n"


def doc_files() -> list[Path]:
    """README.md and every docs/*.md, in a stable order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match["fence"], match["info"].strip()
        words = info.split()
        lang = words[0].lower() if words else ""
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and set(lines[i].strip()) == {fence[0]}
        ):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        reason = None
        if start > 0 and (comment := _SKIP_REASON.match(lines[start - 1])):
            reason = comment["reason"]
        found.append(
            Block(
                path=path,
                line=start + 1,
                lang=lang,
                tags=tuple(words[1:]),
                code="\n".join(body) + "\n",
                skip_reason=reason,
            )
        )
    return found
