"""The ``reconciler`` command line: parse, wire, render; nothing more.

Each command builds its collaborators, calls one function of the engine, renders the result
and returns an exit code. :func:`main` is the one error boundary (design.md §4): expected
errors (:class:`ReconcilerError`, bad usage) print one or two lines and exit 1, Ctrl-C exits
130, anything else is a bug and exits 3 with a hint to report it; no traceback unless
``--debug``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import click

from reconciler import __version__, startup
from reconciler import schema as schema_files
from reconciler.api.client import ClientSettings, concurrency_for
from reconciler.apply import ApplyOptions
from reconciler.asyncrun import run_sync
from reconciler.core.events import ProgressSink
from reconciler.core.plan import DEFAULT_MAX_DELETES, Plan
from reconciler.core.report import ApplyReport
from reconciler.engine import AccountFailure, RunConfig, execute_apply, run_plan, run_status
from reconciler.errors import ConfigError, ManifestError, ReconcilerError
from reconciler.ledger.store import JsonFileLedger, default_ledger_path
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS, load_manifests
from reconciler.manifest.models import LoadedAccount
from reconciler.planfile import read_plan_file, write_plan_file
from reconciler.render.diagnostics import write_problems_text, write_validation_json
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.plan_json import write_plan_json
from reconciler.render.plan_text import write_plan_text
from reconciler.render.report import write_report_json, write_report_text
from reconciler.render.status import status_rows, write_status_json, write_status_text

EXIT_OK, EXIT_FAILED, EXIT_CHANGES, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option("--api-base", envvar="RECONCILER_API_BASE", help="API base URL ending in /api/.")
@click.option(
    "--spam-window",
    type=click.FloatRange(min=0),
    default=30.0,
    envvar="RECONCILER_SPAM_WINDOW",
    show_default=True,
    help="Seconds before an identical request may be sent again (the API's spam filter).",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds one HTTP request may take.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    envvar="RECONCILER_MAX_CONCURRENCY",
    help="HTTP requests in flight across all accounts "
    "[default: the sum of the accounts' queue limits, 16 to 512].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(
    ctx: click.Context,
    api_base: str | None,
    spam_window: float,
    request_timeout: float,
    max_concurrency: int | None,
    debug: bool,
) -> None:
    """Keep the models on ModelsLab accounts equal to what YAML manifests declare."""
    configure_logging(debug)
    ctx.obj = {
        "api_base": api_base,
        "spam_window": spam_window,
        "request_timeout": request_timeout,
        "max_concurrency": max_concurrency,
        "debug": debug,
    }


@cli.command()
@paths_argument
@click.option(
    "--account", "account_names", multiple=True, help="Only list this account (repeatable)."
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def validate(paths: tuple[str, ...], account_names: tuple[str, ...], output: str) -> int:
    """Check manifests (schema and cross-file rules) without touching the network.

    Every manifest is checked, whatever ``--account`` says: names must be unique across all.
    """
    try:
        accounts = build_accounts(paths or ("manifests",), account_names)
    except ManifestError as exc:
        if output == "json":
            write_validation_json(exc.problems, [], sys.stdout)
        else:
            write_problems_text(exc.problems, sys.stderr)
        return EXIT_FAILED
    if output == "json":
        write_validation_json([], [a.name for a in accounts], sys.stdout)
    else:
        noun = "account" if len(accounts) == 1 else "accounts"
        click.echo(f"{len(accounts)} {noun} valid: {', '.join(a.name for a in accounts)}")
    return EXIT_OK


@cli.command()
@click.option("--write", "mode", flag_value="write", help="Regenerate schemas/.")
@click.option("--check", "mode", flag_value="check", default=True, help="Fail if stale.")
def schema(mode: str) -> int:
    """Write or check the JSON Schema of manifests generated from the models."""
    if mode == "write":
        changed = schema_files.write_schema()
        click.echo(f"{schema_files.SCHEMA_FILE}: {'written' if changed else 'up to date'}")
        return EXIT_OK
    if not schema_files.SCHEMA_FILE.is_file():
        click.echo(
            f"there is no schema file at {schema_files.SCHEMA_FILE}: run from the repository "
            "root, or `reconciler schema --write` to create it",
            err=True,
        )
        return EXIT_FAILED
    if schema_files.schema_is_current():
        click.echo(f"{schema_files.SCHEMA_FILE}: up to date")
        return EXIT_OK
    click.echo(f"{schema_files.SCHEMA_FILE} is stale: run `reconciler schema --write`", err=True)
    return EXIT_FAILED


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="0 picks a free port.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Accounts YAML.")
@click.option("--error-mode", type=click.Choice(["legacy", "modern"]), default="legacy")
@click.option("--time-scale", type=float, default=1.0, help="Emulated seconds per real second.")
@click.option("--state-file", type=click.Path(dir_okay=False), help="Keep state in this JSON.")
@click.option("--seed", type=int, help="Seed of the fault generator.")
def emulator(
    host: str,
    port: int,
    config_file: str | None,
    error_mode: str,
    time_scale: float,
    state_file: str | None,
    seed: int | None,
) -> int:
    """Serve the ModelsLab API emulator on loopback until Ctrl-C."""
    from reconciler.emulator import build_config, serve  # only this command needs the server

    config = build_config(
        config_file=config_file,
        error_mode=error_mode,
        time_scale=time_scale,
        state_file=state_file,
        seed=seed,
    )
    serve(config, host=host, port=port)
    return EXIT_OK


# -- building collaborators -------------------------------------------------------------------

DEFAULT_PATHS = DEFAULT_MANIFEST_PATHS

account_option = click.option(
    "--account", "account_names", multiple=True, help="Only this account (repeatable)."
)
ledger_option = click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="RECONCILER_LEDGER",
    help="Ledger file [default: .reconciler-ledger.json beside the manifests].",
)
max_deletes_option = click.option(
    "--max-deletes",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_DELETES,
    show_default=True,
    help="Refuse a run that deletes more models than this (plan shows it blocked).",
)
no_ledger_option = click.option(
    "--no-ledger", is_flag=True, help="Run without a ledger: no replace, no prune: managed."
)


def configure_logging(debug: bool) -> None:
    """Log lines on stderr: everything with ``--debug``; otherwise warnings, but not the
    routine retries of the API client, which progress already shows as waiting."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("stamina").setLevel(logging.DEBUG if debug else logging.ERROR)


def build_accounts(paths: Sequence[str], names: Sequence[str]) -> tuple[LoadedAccount, ...]:
    """The accounts of the manifests under ``paths``, narrowed to ``--account`` names."""
    accounts = load_manifests(paths)
    unknown = sorted(set(names) - {a.name for a in accounts})
    if unknown:
        declared = ", ".join(a.name for a in accounts)
        raise ConfigError(f"unknown account {', '.join(unknown)}; declared: {declared}")
    return tuple(a for a in accounts if not names or a.name in names)


def build_run(
    obj: dict[str, Any],
    paths: Sequence[str],
    names: Sequence[str],
    ledger_path: Path | None,
    no_ledger: bool,
) -> tuple[RunConfig, JsonFileLedger | None]:
    """What a networked command needs: accounts, environment, client settings, ledger store.

    The ledger is None with ``--no-ledger``; else ``--ledger`` or the file beside the manifests.
    """
    paths = paths or DEFAULT_PATHS
    accounts = build_accounts(paths, names)
    settings = ClientSettings(
        request_timeout=obj["request_timeout"],
        spam_window=obj["spam_window"],
        max_concurrency=obj.get("max_concurrency")
        or concurrency_for(a.spec.queue_limit for a in accounts),
    )
    config = RunConfig(accounts, os.environ, obj["api_base"], settings)
    store = None if no_ledger else JsonFileLedger(ledger_path or default_ledger_path(paths))
    return config, store


def split_plan_file(paths: Sequence[str]) -> tuple[Path | None, tuple[str, ...]]:
    """``apply plan.json [PATHS]``: the saved plan, if any, and the manifest paths."""
    plans = [p for p in paths if p.endswith(".json")]
    if len(plans) > 1:
        raise ConfigError(f"apply takes one saved plan, got {', '.join(plans)}")
    rest = tuple(p for p in paths if not p.endswith(".json"))
    return (Path(plans[0]) if plans else None), (rest or DEFAULT_PATHS)


def echo_failures(failures: Sequence[AccountFailure]) -> None:
    """One line per account that could not be read, on stderr."""
    for failure in failures:
        click.echo(f"error: {failure.account}: {failure.message} ({failure.reason})", err=True)


def write_plan_markdown(plan: Plan, stream: TextIO) -> None:
    """The plan as a pull-request comment."""
    stream.write(render_plan_markdown(plan))


PLAN_WRITERS: dict[str, Callable[[Plan, TextIO], None]] = {
    "text": write_plan_text,
    "json": write_plan_json,
    "markdown": write_plan_markdown,
}
REPORT_WRITERS: dict[str, Callable[[ApplyReport, TextIO], None]] = {
    "text": write_report_text,
    "json": write_report_json,
}


# -- commands ---------------------------------------------------------------------------------


@cli.command()
@paths_argument
@account_option
@click.option("-o", "--output", type=click.Choice(sorted(PLAN_WRITERS)), default="text")
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan for `apply PLANFILE`.",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@max_deletes_option
@ledger_option
@no_ledger_option
@click.pass_obj
def plan(
    obj: dict[str, Any],
    paths: tuple[str, ...],
    account_names: tuple[str, ...],
    output: str,
    out_file: Path | None,
    detailed_exitcode: bool,
    max_deletes: int,
    ledger_path: Path | None,
    no_ledger: bool,
) -> int:
    """Read live state and show what apply would do."""
    config, store = build_run(obj, paths, account_names, ledger_path, no_ledger)
    ledger = store.read() if store else None
    run = run_sync(functools.partial(run_plan, config, ledger, max_deletes))
    PLAN_WRITERS[output](run.plan, sys.stdout)
    echo_failures(run.failures)
    if out_file is not None and not run.failures:  # an incomplete plan is never saved
        write_plan_file(run.plan, out_file)
    elif out_file is not None:
        click.echo(f"error: {out_file} not written: the plan is incomplete", err=True)
    if run.failures or run.plan.is_blocked():
        return EXIT_FAILED
    return EXIT_CHANGES if detailed_exitcode and run.plan.has_changes() else EXIT_OK


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str), metavar="[PLANFILE] [PATHS]...")
@account_option
@click.option("-o", "--output", type=click.Choice(sorted(REPORT_WRITERS)), default="text")
@click.option("--no-wait", is_flag=True, help="Send the requests; do not wait for readiness.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=1800.0,
    show_default=True,
    help="Seconds to wait for models to become ready.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds between two listings of an account (the spam window).",
)
@max_deletes_option
@ledger_option
@no_ledger_option
@click.pass_obj
def apply(
    obj: dict[str, Any],
    paths: tuple[str, ...],
    account_names: tuple[str, ...],
    output: str,
    no_wait: bool,
    timeout: float,
    poll_interval: float,
    max_deletes: int,
    ledger_path: Path | None,
    no_ledger: bool,
) -> int:
    """Converge the accounts on the manifests (or on a saved plan), wait, and report."""
    plan_file, manifest_paths = split_plan_file(paths)
    config, store = build_run(obj, manifest_paths, account_names, ledger_path, no_ledger)
    saved = read_plan_file(plan_file) if plan_file is not None else None
    options = ApplyOptions(wait=not no_wait, timeout=timeout, poll_interval=poll_interval)
    show_plan = (lambda run: write_plan_text(run.plan, sys.stdout)) if output == "text" else None
    report = execute_apply(
        config,
        store,
        options,
        saved=saved,
        max_deletes=max_deletes,
        on_plan=show_plan,
        progress=_progress(sys.stderr),
    )
    REPORT_WRITERS[output](report, sys.stdout)
    return EXIT_OK if report.ok() else EXIT_FAILED


@cli.command()
@paths_argument
@account_option
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@ledger_option
@no_ledger_option
@click.pass_obj
def status(
    obj: dict[str, Any],
    paths: tuple[str, ...],
    account_names: tuple[str, ...],
    output: str,
    ledger_path: Path | None,
    no_ledger: bool,
) -> int:
    """Show every declared and unmanaged model with its live condition."""
    config, store = build_run(obj, paths, account_names, ledger_path, no_ledger)
    live, failures = run_sync(functools.partial(run_status, config))
    rows = status_rows(config.accounts, live, store.read() if store else None)
    (write_status_json if output == "json" else write_status_text)(rows, sys.stdout)
    echo_failures(failures)
    return EXIT_FAILED if failures else EXIT_OK


@cli.command()
@click.option(
    "--time-scale",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Emulated seconds per real second.",
)
@paths_argument
def demo(time_scale: float, paths: tuple[str, ...]) -> int:
    """Apply manifests/ to an in-process emulator, then show eviction and repair."""
    from reconciler.demo import run_demo  # only this command needs the emulator

    return run_demo(sys.stdout, paths or DEFAULT_PATHS, time_scale=time_scale)


def _progress(stream: TextIO) -> ProgressSink:
    from reconciler.render.progress import make_progress  # rich is imported only on demand

    return make_progress(stream)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI inside the one error boundary and exit with a documented code."""
    args = list(sys.argv[1:] if argv is None else argv)
    startup.tune_gc()
    sys.exit(run(args))


def run(args: list[str]) -> int:
    """Run the CLI with ``args`` and return the exit code instead of exiting."""
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="reconciler", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_FAILED
    except ReconcilerError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_FAILED
    except Exception as exc:  # the boundary for bugs: anything unexpected
        if debug:
            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in reconciler; please report it with the output of --debug.",
            err=True,
        )
        return EXIT_BUG
    return result if isinstance(result, int) else EXIT_OK
