"""A hub "zygote" for crash tests: imports the server once, then forks a fresh hub per command.

Restarting ``modhub serve`` costs seconds of imports (and a publish's first safety check
imports torch); a crash test that SIGKILLs the hub fifty times forks a warm process instead,
so that every publish takes as long as the measured one. Each child is a real uvicorn
server on loopback, started from scratch on the data directory (migrations, staging
cleanup, lifespan), exactly as ``modhub serve`` would. Commands on stdin, one per line:

    start       fork a hub; prints its pid
    wait PID    reap a child (after the test killed it); prints its exit status
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

import modhub.format.verify  # noqa: F401  (warm: the publish checks import torch; children inherit it)
from modhub.server.app import create_app
from modhub.server.config import ServerSettings


def main() -> None:
    data_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "start":
            pid = os.fork()
            if pid == 0:
                sys.stdin.close()
                settings = ServerSettings(data_dir=data_dir, port=port)
                uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
                os._exit(0)
            print(pid, flush=True)
        elif command == "wait":
            _, status = os.waitpid(int(arg), 0)
            print(status, flush=True)


if __name__ == "__main__":
    main()
