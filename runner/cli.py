"""The `mgrun` command. Each command is a small typed function: its signature is the CLI and its
docstring the `--help`. Heavy modules (mlflow, joblib, dask) are imported inside the commands so
that `mgrun --help` answers at once."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from runner import interrupts
from runner.config import describe_keys
from runner.errors import MgrunError

app = typer.Typer(
    name="mgrun",
    help="Train small neural networks on a pure-Python autograd engine; track them in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: paragraphs rewrap, \b blocks stay as written
)

ConfigArg = Annotated[Path, typer.Argument(help="A run config (YAML), e.g. configs/moons.yaml.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key, e.g. --set training.lr=0.05 (repeatable)."),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store (sqlite:///mlflow.db, http://host:5000). Default: $MLFLOW_TRACKING_URI, "
        "then tracking.uri in the config, then sqlite:///mlflow.db here.",
    ),
]
ExperimentOpt = Annotated[
    str | None,
    typer.Option(
        "--experiment", help="MLflow experiment. Default: tracking.experiment, then name."
    ),
]


def user_errors(command: Callable[..., int | None]) -> Callable[..., None]:
    """Turn user errors into one line on stderr and an exit code; Ctrl-C, `kill` or a closed
    terminal into exit 130."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            with interrupts.installed():  # SIGINT, SIGTERM, SIGHUP: runs end KILLED, exit 130
                code = command(*args, **kwargs)
        except MgrunError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(130) from None
        except OSError as exc:  # a full disk, a read-only store: the open run was ended FAILED
            where = f" ({exc.filename})" if exc.filename else ""
            typer.secho(
                f"error: cannot write{where}: {exc.strerror or exc}; a run it was writing is "
                "ended FAILED, and the next mgrun on a writable store closes what was left",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(1) from None
        raise typer.Exit(code or 0)

    return wrapper


@app.command(epilog="Config keys (YAML, or --set KEY=VALUE):\n\n\b\n" + describe_keys())
@user_errors
def train(
    config: ConfigArg,
    set_: SetOpt = None,
    tracking_uri: TrackingUriOpt = None,
    experiment: ExperimentOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> int:
    """Train one model from a YAML config and record it as an MLflow run.

    Exit codes: 0 trained, 1 training failed or diverged (run FAILED), 2 bad config or data
    (nothing recorded), 130 interrupted (run KILLED). `mgrun keys` lists every config key.
    """
    from runner.commands.train import train_command

    return train_command(config, set_ or [], tracking_uri, experiment, progress)


@app.command()
@user_errors
def sweep(
    sweep_file: Annotated[
        Path, typer.Argument(help="A sweep file (YAML), e.g. experiments/moons_grid.yaml.")
    ],
    n_jobs: Annotated[
        int | None,
        typer.Option("--n-jobs", help="Trials at once; -1 every core. Default: the file's, -1."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="loky (worker processes), sequential, or dask (a Dask cluster: --address, or a "
            "local one of --n-jobs processes). Default: the file's, loky."
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="dask: the scheduler, e.g. tcp://HOST:8786. Default: the file's "
            "execution.address, else a local cluster started and closed here."
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(help="Reruns of a trial whose worker process died. Default: 1."),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Rerun trials that already FINISHED earlier.")
    ] = False,
    keep_top: Annotated[
        str | None,
        typer.Option(
            "--keep-top",
            metavar="K|all",
            help="The best K trials' runs also get plots, the graph and the servable model; "
            "all: every trial. Default: the file's keep_top, 3.",
        ),
    ] = None,
    set_: SetOpt = None,
    tracking_uri: TrackingUriOpt = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", help="MLflow experiment. Default: tracking.experiment, then the file."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> int:
    """Train every trial of a grid or random sweep in parallel; record each as an MLflow run.

    --set overrides apply to the sweep's base config. Re-running a sweep resumes it: trials
    that already FINISHED in the experiment are skipped (--fresh reruns them). Exit codes: 0 every
    trial finished, 1 some failed, 2 bad sweep file or config (nothing recorded), 130
    interrupted (the sweep's run and unfinished trials KILLED).
    """
    from runner.commands.sweep import sweep_command

    return sweep_command(
        sweep_file,
        set_ or [],
        n_jobs=n_jobs,
        backend=backend,
        retries=retries,
        fresh=fresh,
        tracking_uri=tracking_uri,
        experiment=experiment,
        show_progress=progress,
        address=address,
        keep_top=keep_top,
    )


@app.command()
@user_errors
def keys() -> None:
    """List every config key with its default and meaning."""
    typer.echo(describe_keys())


@app.command()
@user_errors
def gradcheck(
    config: ConfigArg,
    set_: SetOpt = None,
    rows: Annotated[int, typer.Option(help="How many training rows to check on.")] = 8,
    tol: Annotated[float, typer.Option(help="Largest relative error that passes.")] = 1e-6,
) -> int:
    """Compare autograd with finite differences on the configured model; exit 1 above --tol."""
    from runner.commands.diagnose import gradcheck_command

    return gradcheck_command(config, set_ or [], rows, tol)


@app.command()
@user_errors
def graph(
    config: ConfigArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="A .dot, .svg or .png file.")],
    set_: SetOpt = None,
    neuron: Annotated[
        str | None,
        typer.Option(
            metavar="LAYER.INDEX",
            help="Draw only this neuron (0.3: layer 0, neuron 3): its inputs, weights, products, "
            "sum, bias and activation with data and grad, as a .png (no Graphviz needed).",
        ),
    ] = None,
) -> None:
    """Write the expression graph of one training sample through the configured model."""
    from runner.commands.diagnose import graph_command

    graph_command(config, set_ or [], output, neuron)


@app.command()
@user_errors
def ui(
    tracking_uri: TrackingUriOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 5000,
    verbose: Annotated[bool, typer.Option(help="Log every request the server answers.")] = False,
) -> None:
    """Open the MLflow UI on the store `mgrun train` writes to (one worker, no job runner);
    Ctrl-C or `kill` stops it, server processes included (exit 130).

    For a team, run one shared tracking server on a machine everyone reaches, and point every
    mgrun at it (the server proxies artifacts, so clients need no access to its disk):

    \b
      MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server \\
        --backend-store-uri sqlite:///mlflow.db \\
        --serve-artifacts --artifacts-destination ./mlruns \\
        --host 0.0.0.0 --port 5000 --workers 1 --allowed-hosts 'tracking.example.org:5000'
      mgrun train CONFIG --tracking-uri http://tracking.example.org:5000

    (or export MLFLOW_TRACKING_URI). Without --allowed-hosts the server only answers requests
    addressed to localhost or a private IP.
    """
    from runner.commands.ui import serve

    serve(tracking_uri, host, port, verbose)


def main() -> None:
    app(prog_name="mgrun")


# `mgrun` and `python -m runner` start in runner.launch, quiet about a Ctrl-C during the imports
if __name__ == "__main__":
    main()
