"""A Python REPL that the docs test pastes code blocks into, line by line.

Run as ``python kernel.py RESULT_FD``. It reads one JSON object per line on
stdin, ``{"code": "...", "where": "README.md:40"}``, feeds the code to one
``code.InteractiveConsole`` exactly as a person pasting it into ``python``
would (so a block that only works as a script, e.g. a statement right after an
indented block without a blank line, fails here too), then presses Enter once
more, and answers ``{"ok": true}`` or ``{"ok": false, "error": "..."}`` on
RESULT_FD. Everything the code prints goes to this process's stdout/stderr.
Names persist from block to block, as in a notebook.
"""

from __future__ import annotations

import code
import json
import os
import sys
import traceback


class _Console(code.InteractiveConsole):
    def __init__(self) -> None:
        super().__init__(locals={"__name__": "__main__"}, filename="<docs>")
        self.error: str | None = None

    def showsyntaxerror(self, filename: str | None = None, **kwargs: object) -> None:
        self.error = "".join(traceback.format_exception_only(*sys.exc_info()[:2]))
        super().showsyntaxerror(filename)

    def showtraceback(self) -> None:
        kind, value, tb = sys.exc_info()
        self.error = "".join(traceback.format_exception(kind, value, tb.tb_next if tb else None))
        super().showtraceback()


def _run(console: _Console, source: str) -> str | None:
    console.error = None
    more = False
    for line in source.splitlines():
        more = console.push(line)
        if console.error:
            return console.error
    if more:
        console.push("")
    return console.error


def main() -> None:
    results = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    sys.path[0] = ""  # as in an interactive `python`: the working directory, not this script's
    console = _Console()
    for request in sys.stdin:
        block = json.loads(request)
        print(f"\n>>> {block['where']}", flush=True)
        error = _run(console, block["code"])
        sys.stdout.flush()
        sys.stderr.flush()
        results.write(json.dumps({"ok": error is None, "error": error}) + "\n")


if __name__ == "__main__":
    main()
