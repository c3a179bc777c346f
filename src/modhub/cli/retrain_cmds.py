"""``modhub retrain images|text|audio``: train a classifier on top of a module, write it as a module."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error

retrain_app = typer.Typer(
    help="Train a classifier for your own classes on top of a module (transfer learning).",
    no_args_is_help=True,
)
app.add_typer(retrain_app, name="retrain")

Module = Annotated[str, typer.Option("--module", "-m", help="base module: handle, hub URL or directory")]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="directory for the new module (must be new or empty; with --cluster: on the cluster's "
        "filesystem); optional with --publish",
    ),
]
Epochs = Annotated[
    int,
    typer.Option(min=1, help="mini-batch passes training the head (image --fine-tune and --augment only)"),
]
TuneEpochs = Annotated[
    int | None,
    typer.Option(
        "--fine-tune-epochs",
        min=1,
        help="with --fine-tune: passes training module and head [default: --epochs]",
    ),
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="examples per training step")]
Lr = Annotated[float, typer.Option(min=0.0, help="learning rate of the head; the module gets lr/10")]
FineTune = Annotated[bool, typer.Option("--fine-tune", help="after the head, train the module too")]
TextFineTune = Annotated[
    bool,
    typer.Option(
        "--fine-tune",
        help="first fine-tune the encoder on contrastive pairs drawn from the labels (SetFit), then the head",
    ),
]
Pairs = Annotated[
    int, typer.Option("--pairs-per-example", min=2, help="with --fine-tune: contrastive pairs per text")
]
TuneSeconds = Annotated[
    float,
    typer.Option("--fine-tune-seconds", min=1.0, help="with --fine-tune: stop the pair training after this"),
]
Validation = Annotated[
    float,
    typer.Option(
        min=0.01,
        max=0.99,
        help="fraction of each class held out (image --fine-tune and --augment; otherwise k-fold CV)",
    ),
]
Folds = Annotated[int, typer.Option(min=2, help="folds of the cross-validation choosing the head")]
Seed = Annotated[int, typer.Option(help="seed of the split, initialisation and shuffling")]
License = Annotated[
    str | None, typer.Option("--license", help="SPDX licence of the new module (default: the base module's)")
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace the --out directory")]
Precision = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="frozen features from the module's reduced-precision variant (int8: faster); the new "
        "module holds the exact base graph with a head trained on them [default: the exact graph]",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
# Remote compute (modhub.cluster): run the same retraining as a Ray job, publish the result.
Cluster = Annotated[
    str | None,
    typer.Option(
        help="run as a job on this Ray cluster: its Jobs API (dashboard) URL, e.g. http://HOST:8265"
    ),
]
Publish = Annotated[
    str | None,
    typer.Option(help="publish the new module as publisher/name (from the cluster, with --cluster)"),
]
Workers = Annotated[
    int | None,
    typer.Option(min=1, help="with --cluster --fine-tune: fine-tune on Ray Train with this many workers"),
]
Upload = Annotated[
    bool,
    typer.Option(
        "--upload/--no-upload",
        help="with --cluster: send local data (and a module directory) with the job; --no-upload: "
        "the cluster reads the same path (shared filesystem)",
    ),
]
ClusterPython = Annotated[
    str | None,
    typer.Option("--cluster-python", help="the cluster's Python with modhub [default: python]"),
]


def _leading_options(module: Module, out: Out = None) -> None:
    """The options both commands take first, after the data: :func:`_command` adds them."""


def _shared_options(
    folds: Folds = 5,
    validation: Validation = 0.2,
    seed: Seed = 0,
    license: License = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    cluster: Cluster = None,
    publish: Publish = None,
    workers: Workers = None,
    upload: Upload = True,
    cluster_python: ClusterPython = None,
) -> None:
    """The options both commands end with: :func:`_command` appends them to each command's own."""


# The options that are not TrainConfig fields: what to train on, where the result goes, where it runs.
_RUN_OPTIONS = (
    "module",
    "out",
    "license",
    "overwrite",
    "quiet",
    "cluster",
    "publish",
    "workers",
    "upload",
    "cluster_python",
)
_COLUMNS = ("text_column", "label_column")


Kind = Literal["images", "text", "audio"]


def _command(kind: Kind) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Make ``retrain KIND`` from a function that only declares the command's own options.

    typer builds the command from its signature: the function's first parameter (the data),
    :func:`_leading_options`, the function's other parameters, then :func:`_shared_options`.
    The function's body is not run: a call hands the data and every option to :func:`_run`.
    """
    leading, shared = (
        inspect.signature(options, eval_str=True).parameters.values()
        for options in (_leading_options, _shared_options)
    )

    def decorate(declared: Callable[..., None]) -> Callable[..., None]:
        source, *own = inspect.signature(declared, eval_str=True).parameters.values()

        @functools.wraps(declared)
        def command(**options: Any) -> None:
            _run(kind, options.pop(source.name), options)

        parameters = [source, *leading, *own, *shared]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return command

    return decorate


def _summary(result: Any) -> None:
    rep = result.report
    val = rep["validation"]
    cv = rep.get("cross_validation")
    how = (
        f"{cv['folds']}-fold cross-validation, {cv['transform']} features, C={cv['C']:.3g}"
        if cv
        else f"hold-out, epoch {rep['history']['best_epoch']} kept"
    )
    typer.echo(
        f"validation accuracy {val['accuracy']:.3f} on {rep['data']['validation']} examples "
        f"(macro F1 {val['macro_f1']:.3f}; {how})"
    )
    tuned = rep.get("fine_tune")
    if tuned:
        bound = ", stopped by --fine-tune-seconds" if tuned["stopped_by_time"] else ""
        typer.echo(
            f"fine-tuned the encoder on {tuned['pairs']} of {tuned['pairs_planned']} contrastive pairs "
            f"in {tuned['seconds']:.0f} s{bound}"
        )
    width = max(len(name) for name in val["per_class"])
    for name, m in val["per_class"].items():
        typer.echo(
            f"  {name:<{width}}  precision {m['precision']:.3f}  recall {m['recall']:.3f}  n={m['support']}"
        )
    feats = rep["features"]
    typer.echo(f"features: {feats['extracted']} computed, {feats['cache_hits']} from the cache")
    if rep["data"]["skipped"]:
        typer.secho(
            f"skipped {len(rep['data']['skipped'])} unreadable input(s):", err=True, fg=typer.colors.YELLOW
        )
        for line in rep["data"]["skipped"]:
            typer.secho(f"  {line}", err=True, fg=typer.colors.YELLOW)
    typer.echo(f"module written to {result.module_dir} (report in {result.module_dir / 'assets' / 'report'})")


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show modhub.retrain's warnings (skipped files, CSV rows) as plain lines on stderr."""
    logger = logging.getLogger("modhub.retrain")
    handler = logging.StreamHandler()  # binds the current sys.stderr
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@retrain_app.command("images")
@_command("images")
def images(
    data_dir: Annotated[Path, typer.Argument(help="folder with one sub-folder of photos per class")],
    epochs: Epochs = 20,
    fine_tune_epochs: TuneEpochs = None,
    batch_size: BatchSize = 32,
    lr: Lr = 1e-3,
    fine_tune: FineTune = False,
    augment: Annotated[
        bool,
        typer.Option(
            "--augment",
            help="random flips and crops of training images (the module then runs every epoch: "
            "training features cannot come from the cache)",
        ),
    ] = False,
    resize: Annotated[
        str,
        typer.Option(
            help="how photos are fitted to the module's input: squash (whole photo), crop (centre), pad"
        ),
    ] = "squash",
    flip: Annotated[
        bool, typer.Option("--flip", help="also train the head on horizontally flipped photos")
    ] = False,
    precision: Precision = None,
) -> None:
    """Train an image classifier on DATA_DIR/<class>/<photo> on top of an image-feature-vector module."""


@retrain_app.command("text")
@_command("text")
def text(
    data_csv: Annotated[Path, typer.Argument(help="CSV file with a header row")],
    text_column: Annotated[str, typer.Option("--text-column", help="column holding the texts")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="column holding the classes")] = "label",
    epochs: Epochs = 20,
    fine_tune_epochs: TuneEpochs = None,
    batch_size: BatchSize = 32,
    lr: Lr = 1e-3,
    fine_tune: TextFineTune = False,
    pairs_per_example: Pairs = 40,
    fine_tune_seconds: TuneSeconds = 300.0,
    precision: Precision = None,
) -> None:
    """Train a text classifier on a CSV of labelled texts on top of a text-embedding module."""


@retrain_app.command("audio")
@_command("audio")
def audio(
    data_dir: Annotated[Path, typer.Argument(help="folder with one sub-folder of WAV/FLAC clips per class")],
    batch_size: BatchSize = 32,
) -> None:
    """Train a sound classifier on DATA_DIR/<class>/<clip>.wav on top of an audio-embedding module."""


def _run(kind: Kind, source: Path, options: dict[str, Any]) -> None:
    """What both commands do: retrain on a Ray cluster or here, then print the summary and publish."""
    from modhub.settings import Settings

    run = {name: options.pop(name) for name in _RUN_OPTIONS}
    columns = {name: options.pop(name) for name in _COLUMNS if name in options}
    with fail_on_hub_error(), _warnings_to_stderr():
        # Inside: without torch (the torch extra) this is a one-line error, not a traceback.
        from modhub.cluster.cli_support import local_out, publish_result, retrain_on_cluster
        from modhub.retrain import TrainConfig, retrain_audio, retrain_images, retrain_text

        config = TrainConfig(**options)  # the options left are the training settings
        settings = Settings.from_env()  # read once for the command: training and publishing share it
        if kind == "audio" and (run["cluster"] is not None or run["workers"] is not None):
            raise typer.BadParameter("retrain audio runs locally; drop --cluster/--workers")
        if run["cluster"] is not None or run["workers"] is not None:
            retrain_on_cluster(
                "images" if kind == "images" else "text", source, config, **run, **columns, settings=settings
            )
            return
        retrains: dict[str, Callable[..., Any]] = {
            "images": retrain_images,
            "text": retrain_text,
            "audio": retrain_audio,
        }
        retrain = retrains[kind]
        with local_out(run["out"], run["publish"]) as target:
            result = retrain(
                source,
                run["module"],
                target,
                **columns,
                config=config,
                overwrite=run["overwrite"],
                license=run["license"],
                settings=settings,
                progress=False if run["quiet"] else None,
            )
            _summary(result)
            publish_result(target, run["publish"], settings)
