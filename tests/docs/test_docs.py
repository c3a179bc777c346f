"""Every code block in README.md and docs/*.md runs, so the docs cannot rot.

Per Markdown file, in document order, against a real hub (conftest.py):

* python blocks are pasted line by line into ONE Python REPL (kernel.py), so a
  later block uses the names of earlier ones, as a reader's session would;
* shell blocks run with ``bash -e -o pipefail``, the venv's ``bin`` first on PATH;
* js blocks (```` ```js ````) run in Node.js 20, each as its own ES module (top-level
  ``await`` works), written into the working directory, whose ``node_modules`` is the
  checkout's (``make web``: ``@tensorflow/tfjs``, ``onnxruntime-web``, ...), so
  ``import * as tf from "@tensorflow/tfjs"`` resolves as in a reader's project. A block
  that needs the hub writes ``http://127.0.0.1:8000`` (rewritten, as below) or reads the
  ``HUB_URL`` environment variable (set to the test hub's URL). Without Node.js or
  ``node_modules`` js blocks skip, and fail in CI (CI=true).

Both share a fresh working directory, which looks like a checkout after
``make serve``: ``.venv`` links to the running interpreter's environment,
``.modhub/zoo`` to the built starter modules and ``.modhub/hub`` to the test
hub's data directory. HOME, MODHUB_CACHE and MODHUB_CONFIG_DIR are fresh and
empty, so nothing of the developer's cache, token or hub is used.
``http://127.0.0.1:8000`` in a block becomes the test hub's URL (see conftest.py).

Blocks that cannot run here are tagged ``skip-test`` with a reason
(markdown_blocks.py); the static tests below keep them few and check the
Makefile targets they stand for with ``make -n``.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modhub.exporting.tfjs import tf_subprocess_env
from tests.docs.conftest import DocsHub
from tests.docs.markdown_blocks import JS, PYTHON, REPO, SHELL, SHOWN, Block, blocks, doc_files
from tests.harness import need, serve_env

KERNEL = Path(__file__).with_name("kernel.py")
BLOCK_TIMEOUT = 300.0
# Blocks that cannot run in a test (a server that never returns, an install step);
# each is tagged and explained where it stands. Raise this only with a good reason.
MAX_SKIPPED = 6
# A `text output` block shows what the runnable block above it prints; its words are checked.
OUTPUT_TAG = "output"
DOC_URL = re.compile(r"http://(127\.0\.0\.1|localhost):8000")


def _env(work: Path, hub: DocsHub) -> dict[str, str]:
    env = {k: v for k, v in serve_env().items() if not k.startswith("MODHUB_")}
    home = work.parent / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        MPLBACKEND="Agg",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        MODHUB_ENDPOINT=hub.url,
        MODHUB_CACHE=str(work.parent / "modhub-cache"),
        MODHUB_CONFIG_DIR=str(work.parent / "modhub-config"),
        MODHUB_PROGRESS="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def _workdir(tmp_path: Path, hub: DocsHub) -> Path:
    work = tmp_path / "work"
    (work / ".modhub").mkdir(parents=True)
    (work / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    (work / ".modhub" / "zoo").symlink_to(hub.zoo_dir, target_is_directory=True)
    (work / ".modhub" / "hub").symlink_to(hub.data_dir, target_is_directory=True)
    if (REPO / "node_modules").is_dir():
        (work / "node_modules").symlink_to(REPO / "node_modules", target_is_directory=True)
    return work


class _Repl:
    """The kernel process of one Markdown file."""

    def __init__(self, work: Path, env: dict[str, str], log: Path, python: str | None = None) -> None:
        read_fd, write_fd = os.pipe()
        self.log = log
        # The TensorFlow venv's python (blocks tagged `tensorflow`) runs without the warning
        # filters: tensorflow_hub itself warns about pkg_resources.
        strict = ["-W", "error::DeprecationWarning", "-W", "error::FutureWarning"] if python is None else []
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    python or sys.executable,
                    *strict,
                    str(KERNEL),
                    str(write_fd),
                ],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=work,
                env=env if python is None else tf_subprocess_env(env),
                pass_fds=(write_fd,),
                text=True,
            )
        os.close(write_fd)
        self.results = os.fdopen(read_fd)

    def output_since(self, offset: int) -> str:
        with open(self.log, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")

    def run(self, block: Block, code: str) -> str | None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"code": code, "where": block.where}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.results], [], [], BLOCK_TIMEOUT)
        if not ready:
            return f"no answer within {BLOCK_TIMEOUT:.0f} s"
        line = self.results.readline()
        if not line:
            return f"the Python process died (exit status {self.proc.wait()})"
        answer = json.loads(line)
        return None if answer["ok"] else str(answer["error"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.results.close()


def _tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:]


def _run_shell(code: str, work: Path, env: dict[str, str]) -> tuple[str | None, str]:
    """(error or None, what the commands printed)."""
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {BLOCK_TIMEOUT:.0f} s", ""
    output = done.stdout + done.stderr
    if done.returncode != 0:
        streams = f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        return f"exit status {done.returncode}\n{streams}", output
    return None, output


def _run_js(block: Block, code: str, work: Path, env: dict[str, str], hub_url: str) -> tuple[str | None, str]:
    """Run a js block as an ES module in Node.js: (error or None, what it printed)."""
    node = shutil.which("node") or ""
    need(
        bool(node) and (work / "node_modules").is_dir(),
        "js blocks need Node.js and the checkout's node_modules (make web)",
    )
    script = work / f"block-{block.line}.mjs"
    script.write_text(code, encoding="utf-8")
    try:
        done = subprocess.run(
            [node, script.name],
            cwd=work,
            env={**env, "HUB_URL": hub_url},
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {BLOCK_TIMEOUT:.0f} s", ""
    output = done.stdout + done.stderr
    if done.returncode != 0:
        return f"exit status {done.returncode}\n--- output\n{output[-6000:]}", output
    return None, output


def _missing_words(expected: str, output: str) -> list[str]:
    """A loose output check: every word of the shown output (numbers and hashes vary) was printed."""
    words = re.findall(r"(?<![0-9A-Za-z])[A-Za-z][A-Za-z_'-]{2,}(?![0-9])", expected)
    return [word for word in dict.fromkeys(words) if word not in output]


# A python block tagged `tensorflow` runs in the separate TensorFlow venv (MODHUB_TF_PYTHON).
TF_TAG = "tensorflow"


def _tf_python() -> str:
    configured = os.environ.get("MODHUB_TF_PYTHON")
    if not configured:
        if os.environ.get("CI"):
            pytest.fail("MODHUB_TF_PYTHON is not set; make test builds .venv-tf and sets it")
        pytest.skip("blocks tagged tensorflow need the TF venv: MODHUB_TF_PYTHON=$PWD/.venv-tf/bin/python")
    return configured


def _tf_env(env: dict[str, str], work: Path) -> dict[str, str]:
    clean = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    clean.update(TFHUB_CACHE_DIR=str(work.parent / "tfhub-cache"), TF_CPP_MIN_LOG_LEVEL="2")
    return clean


def _runnable_files() -> list[Path]:
    return [p for p in doc_files() if any(b.runnable and not b.skipped for b in blocks(p))]


@pytest.mark.slow
@pytest.mark.parametrize("doc", _runnable_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_code_blocks_run(doc: Path, docs_hub: DocsHub, tmp_path: Path) -> None:
    work = _workdir(tmp_path, docs_hub)
    env = _env(work, docs_hub)
    repl: _Repl | None = None
    tf_repl: _Repl | None = None
    timings: list[str] = []
    last: tuple[Block, str] | None = None
    try:
        for block in blocks(doc):
            if OUTPUT_TAG in block.tags:
                assert last is not None, f"{block.where}: an output block needs a runnable block above it"
                missing = _missing_words(block.code, last[1])
                assert not missing, (
                    f"{block.where} shows output that {last[0].where} did not print: {missing}\n"
                    f"--- printed\n{last[1][-4000:]}"
                )
            if not block.runnable or block.skipped:
                continue
            code = DOC_URL.sub(docs_hub.url, block.code if block.lang not in SHELL else block.shell_script())
            start = time.monotonic()
            if block.lang in PYTHON and TF_TAG in block.tags:
                tf_repl = tf_repl or _Repl(work, _tf_env(env, work), tmp_path / "tf.log", _tf_python())
                offset = tf_repl.log.stat().st_size
                error = tf_repl.run(block, code)
                output = tf_repl.output_since(offset)
                if error:
                    error += f"\n--- TensorFlow Python output so far\n{_tail(tf_repl.log)}"
            elif block.lang in PYTHON:
                repl = repl or _Repl(work, env, tmp_path / "python.log")
                offset = repl.log.stat().st_size
                error = repl.run(block, code)
                output = repl.output_since(offset)
                if error:
                    error += f"\n--- Python output so far\n{_tail(repl.log)}"
            elif block.lang in JS:
                error, output = _run_js(block, code, work, env, docs_hub.url)
            else:
                error, output = _run_shell(code, work, env)
            last = (block, output)
            timings.append(f"{block.where} {time.monotonic() - start:.1f} s")
            if error:
                pytest.fail(f"the {block.lang} block at {block.where} failed:\n{block.code}\n{error}")
    finally:
        for each in (repl, tf_repl):
            if each is not None:
                each.close()
        print("\n".join(timings))


# --- static checks: fast, no hub -------------------------------------------------


def _all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in blocks(path)]


def test_every_fence_names_a_known_language() -> None:
    unknown = [
        f"{b.where}: {b.lang or '(none)'!r}"
        for b in _all_blocks()
        if b.lang not in PYTHON | SHELL | JS | SHOWN
    ]
    assert not unknown, "give each fence a language (python, sh, text, ...):\n" + "\n".join(unknown)


def test_skipped_blocks_are_few_and_explained() -> None:
    skipped = [b for b in _all_blocks() if b.skipped]
    for block in skipped:
        assert block.runnable, f"{block.where}: only runnable blocks can be skip-test"
        assert block.skip_reason and len(block.skip_reason) >= 15, (
            f"{block.where}: put <!-- skip-test: why --> right above a skip-test block"
        )
    unexplained = [b.where for b in _all_blocks() if b.skip_reason and not b.skipped]
    assert not unexplained, f"a skip-test comment above a block not tagged skip-test: {unexplained}"
    assert len(skipped) <= MAX_SKIPPED, [b.where for b in skipped]


def test_python_blocks_compile() -> None:
    """Fast feedback before the slow run: every python block is valid Python."""
    for block in _all_blocks():
        if block.lang in PYTHON:
            compile(block.code, block.where, "exec")


@pytest.mark.parametrize("target", ["serve", "test"])
def test_quickstart_make_targets_dry_run(target: str) -> None:
    """The README's two commands exist: `make -n` prints what they would do without doing it."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"make {target}" in readme
    done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_relative_links_point_at_files() -> None:
    link = re.compile(r"\]\((?!https?:|mailto:|#|/)([^)#\s]+)")
    broken = []
    for path in doc_files():
        for target in link.findall(path.read_text(encoding="utf-8")):
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
    assert not broken, broken


def _doc(name: str) -> str:
    return (REPO / "docs" / name).read_text(encoding="utf-8")


def test_configuration_lists_every_variable() -> None:
    """Every setting and every MODHUB_* name the code reads is in docs/configuration.md."""
    from modhub.server.config import ServerSettings
    from modhub.settings import Settings

    names = {f"MODHUB_{field.upper()}" for field in Settings.model_fields}
    names |= {f"MODHUB_SERVER_{field.upper()}" for field in ServerSettings.model_fields}
    for root in (REPO / "src", REPO / "tests"):
        for path in root.rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            names |= set(re.findall(r"MODHUB_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_*])", text))
    missing = sorted(name for name in names if f"`{name}`" not in _doc("configuration.md"))
    assert not missing, f"document these in docs/configuration.md: {missing}"


def test_http_api_lists_every_error_code_under_its_status() -> None:
    """docs/http-api.md's error table follows modhub.errors.ERROR_CODES (status and client exception)."""
    from modhub.errors import ERROR_CODES

    rows = {}
    for line in _doc("http-api.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and (cells[0].isdigit() or cells[0] == "other"):
            rows[cells[0]] = cells
    wrong = []
    for code, entry in ERROR_CODES.items():
        row = rows.get(str(entry.status) if entry.status else "other")
        if row is None or f"`{code}`" not in row[2] or f"`{entry.error.__name__}`" != row[1]:
            wrong.append(code)
    assert rows and not wrong, f"docs/http-api.md's error table misses or misplaces: {wrong}"


def test_module_format_lists_every_manifest_field_and_task() -> None:
    from modhub.format.manifest import (
        FileEntry,
        ImagePreprocessing,
        Manifest,
        Metadata,
        TensorSpec,
        TokenizerSpec,
    )
    from modhub.format.tasks import task_names

    text = _doc("module-format.md")
    fields = {
        name
        for model in (Manifest, TensorSpec, TokenizerSpec, ImagePreprocessing, Metadata, FileEntry)
        for name in model.model_fields
    }
    missing = sorted(name for name in fields | set(task_names()) if f"`{name}`" not in text)
    assert not missing, f"document these in docs/module-format.md: {missing}"


def test_every_command_is_documented() -> None:
    import typer.main

    from modhub.cli import app

    group = typer.main.get_command(app)
    commands = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        commands += [f"modhub {name} {sub}" for sub in subcommands] if subcommands else [f"modhub {name}"]
    text = "\n".join(path.read_text(encoding="utf-8") for path in doc_files())
    missing = [command for command in commands if command not in text]
    assert not missing, f"no doc mentions: {missing}"


def test_output_check_ignores_numbers_but_not_words() -> None:
    assert (
        _missing_words("military uniform 0.43\ntorch.Size([3, 384])", "military uniform 0.99 torch.Size")
        == []
    )
    assert _missing_words("sha256 3434c13e…, says", "sha256 ffff, says") == []
    assert _missing_words("bow tie 0.32", "bowler hat 0.32") == ["tie"]


def test_repl_behaves_like_the_interactive_prompt(tmp_path: Path) -> None:
    """Code that works as a script but not when pasted into `python` fails here too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODHUB_")}
    repl = _Repl(tmp_path, env, tmp_path / "python.log")
    here = Block(path=REPO / "README.md", line=1, lang="python", tags=(), code="", skip_reason=None)
    try:
        error = repl.run(here, "for i in range(2):\n    x = i\ny = 1\n")
        assert error and "SyntaxError" in error
        assert repl.run(here, "for i in range(2):\n    x = i\n\ny = x + 1\n") is None
        offset = repl.log.stat().st_size
        assert repl.run(here, "y * 21\n") is None
        assert "42" in repl.output_since(offset)
        error = repl.run(here, "1 / 0\nz = 1\n")
        assert error and "ZeroDivisionError" in error
        assert repl.run(here, "'z' in dir()\n") is None
        assert "False" in repl.output_since(offset)
    finally:
        repl.close()
