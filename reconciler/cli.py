"""The ``reconciler`` command line: parse, wire, render; nothing more.

Each command builds its collaborators, calls one function of the engine, renders the result
(the renderer is looked up in :mod:`reconciler.render.outputs`) and returns an exit code.
:func:`run` is the one error boundary (design.md §4): expected errors
(:class:`ReconcilerError`, bad usage) print one or two lines and exit 1, or, where ``apply``
declared them a refusal (:func:`refusals_reported`), show the refused report; Ctrl-C exits
130; anything else is a bug and exits 3 with a hint to report it and a crash log
(:mod:`reconciler.crashlog`); no traceback unless ``--debug``. Messages quote the API, paths
and manifest values, so what the CLI echoes itself passes through
:func:`~reconciler.render.safe_text.safe_text`, and so do log lines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click

from reconciler import __version__, startup
from reconciler import schema as schema_files
from reconciler.api.client import ClientSettings, concurrency_for
from reconciler.api.kinds import API_KINDS, ApiKind
from reconciler.api.secret import install_log_redaction, redact
from reconciler.apply import ApplyOptions
from reconciler.asyncrun import run_sync
from reconciler.core.events import ProgressSink
from reconciler.core.intent import Shard, in_shard, parse_shard
from reconciler.core.plan import DEFAULT_LOAD_GRACE, DEFAULT_MAX_DELETES, Action, Plan
from reconciler.core.report import ApplyReport
from reconciler.core.status import status_rows
from reconciler.crashlog import write_crash_log
from reconciler.engine import (
    REFUSALS,
    AccountFailure,
    ApiAccess,
    PlanResult,
    apply_with_ledger,
    plan_accounts,
    read_status,
    refused_report,
)
from reconciler.errors import (
    ApplyDeclined,
    ConfigError,
    ManifestError,
    PlanBlocked,
    ReconcilerError,
)
from reconciler.fsutil import SymlinkRefused, atomic_write_text
from reconciler.github.flow import CommentMode
from reconciler.github.step import GithubStep, github_mode
from reconciler.ledger.store import LedgerStore, open_ledger
from reconciler.manifest.loader import DEFAULT_MANIFEST_PATHS, load_manifests
from reconciler.manifest.models import Api, LoadedAccount
from reconciler.manifest.policy import DEFAULT_KEY_ENV_PATTERN, TrustPolicy, operator_policy
from reconciler.planfile import read_plan_file, split_plan_file, write_plan_file
from reconciler.render.diagnostics import Validation, write_problems_text
from reconciler.render.outputs import (
    PLAN_RENDERERS,
    REPORT_RENDERERS,
    STATUS_RENDERERS,
    VALIDATION_RENDERERS,
    Streams,
)
from reconciler.render.plan_text import write_plan_text
from reconciler.render.safe_text import SafeLogFormatter, safe_text
from reconciler.scaffold import DEFAULT_DIRECTORY, key_env_for, starter_files, write_starter
from reconciler.templates import DEFAULT_ACTION, write_workflows

startup.imports_done()  # the collector as it was, until main() tunes it

EXIT_OK, EXIT_FAILED, EXIT_CHANGES, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=str))


def _parse_shard(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Shard | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


shard_option = click.option(
    "--shard",
    callback=_parse_shard,
    metavar="I/N",
    help="Only the accounts of shard I of N (a stable hash of the account name).",
)


def _as_api_kind(_ctx: click.Context, _param: click.Parameter, value: str | None) -> ApiKind | None:
    """``--api``'s choice as the :class:`ApiKind` the code asks for capabilities."""
    return None if value is None else ApiKind(value)


def output_option(choices: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o``; without it, ``github`` inside GitHub Actions (GITHUB_ACTIONS=true), else text."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(choices),
        default=None,
        help="Output format [default: github in GitHub Actions, else text].",
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option("--api-base", envvar="RECONCILER_API_BASE", help="API base URL ending in /api/.")
@click.option(
    "--allow-api-base",
    "allowed_api_bases",
    multiple=True,
    envvar="RECONCILER_ALLOWED_API_BASES",
    metavar="URL",
    help="Another base a manifest's api_base may name (repeatable; the variable takes several, "
    "separated by spaces or commas). The official bases and loopback are always allowed.",
)
@click.option(
    "--key-env-pattern",
    envvar="RECONCILER_KEY_ENV_PATTERN",
    metavar="REGEX",
    help="Variable names a manifest's key_env may take (whole name) "
    f"[default: {DEFAULT_KEY_ENV_PATTERN}].",
)
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
    "--unreachable-timeout",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="Seconds a call keeps retrying an API it cannot reach before it gives up.",
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
    allowed_api_bases: tuple[str, ...],
    key_env_pattern: str | None,
    spam_window: float,
    request_timeout: float,
    unreachable_timeout: float,
    max_concurrency: int | None,
    debug: bool,
) -> None:
    """Keep the models on ModelsLab accounts equal to what YAML manifests declare."""
    configure_logging(debug)
    # The object run() passed in, if any: the boundary reads what a command left there.
    ctx.ensure_object(dict).update(
        {
            "api_base": api_base,
            "allowed_api_bases": allowed_api_bases,
            "key_env_pattern": key_env_pattern,
            "spam_window": spam_window,
            "request_timeout": request_timeout,
            "unreachable_timeout": unreachable_timeout,
            "max_concurrency": max_concurrency,
            "debug": debug,
        }
    )


@cli.command()
@paths_argument
@click.option(
    "--account", "account_names", multiple=True, help="Only list this account (repeatable)."
)
@output_option(list(VALIDATION_RENDERERS))
@click.pass_obj
def validate(
    obj: dict[str, Any], paths: tuple[str, ...], account_names: tuple[str, ...], output: str | None
) -> int:
    """Check manifests (schema, cross-file rules, the operator's trust policy) offline.

    Every manifest is checked, whatever ``--account`` says: names must be unique across all.
    """
    output = github_mode(output, os.environ)
    step = (
        GithubStep.start(sys.stdout, os.environ, paths or DEFAULT_PATHS)
        if output == "github"
        else None
    )
    return validate_into(step, paths, account_names, output, build_policy(obj))


def validate_into(
    step: GithubStep | None,
    paths: Sequence[str],
    account_names: Sequence[str],
    output: str,
    policy: TrustPolicy,
) -> int:
    """``validate``'s work, shared with a fork pull request's degraded ``plan``."""
    render = VALIDATION_RENDERERS[output]
    try:
        accounts = build_accounts(paths or DEFAULT_PATHS, account_names, policy)
    except ManifestError as exc:
        render(Validation(problems=tuple(exc.problems)), std_streams())
        if step is not None:
            step.invalid(exc.problems)
        return EXIT_FAILED
    if step is not None:
        step.valid(accounts)
    render(Validation(accounts=tuple(a.name for a in accounts)), std_streams())
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
    envvar="RECONCILER_LEDGER",
    metavar="FOLDER|git:BRANCH",
    help="Where the ledger lives: a folder, or git:BRANCH for a branch of the manifests' "
    "repository (git: alone means git:reconciler-ledger) "
    "[default: .reconciler-ledger/ beside the manifests folder].",
)
max_deletes_option = click.option(
    "--max-deletes",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_DELETES,
    show_default=True,
    help="Refuse a run that deletes more models than this (plan shows it blocked).",
)
load_grace_option = click.option(
    "--load-grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_LOAD_GRACE,
    show_default=True,
    help="Seconds an enterprise load may go unlisted before it is taken for lost and sent "
    "again (enterprise servers list a model only once loaded).",
)
no_ledger_option = click.option(
    "--no-ledger", is_flag=True, help="Run without a ledger: no replace, no prune: managed."
)


def configure_logging(debug: bool) -> None:
    """Log lines on stderr: everything with ``--debug``; otherwise warnings, but not the
    routine retries of the API client, which progress already shows as waiting.

    Every record is redacted as it is made (URL credentials, the run's keys), whichever
    library logged it: httpx logs each request's URL, user-info included. Log messages quote
    the API's answers, so the formatter also neutralises them (:class:`SafeLogFormatter`).
    """
    install_log_redaction()
    handler = logging.StreamHandler()
    handler.setFormatter(SafeLogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # As before: a no-op when the root logger already has handlers (a host program, pytest).
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


def build_policy(obj: dict[str, Any]) -> TrustPolicy:
    """The operator's trust policy from the global options (checked: a bad one is an error)."""
    return operator_policy(obj["api_base"], obj["allowed_api_bases"], obj["key_env_pattern"])


def build_accounts(
    paths: Sequence[str], names: Sequence[str], policy: TrustPolicy, shard: Shard | None = None
) -> tuple[LoadedAccount, ...]:
    """The accounts of the manifests under ``paths`` (checked against the operator's
    ``policy``), narrowed to ``--account`` names and to ``--shard``."""
    accounts = load_manifests(paths, policy)
    unknown = sorted(set(names) - {a.name for a in accounts})
    if unknown:
        declared = ", ".join(a.name for a in accounts)
        raise ConfigError(f"unknown account {', '.join(unknown)}; declared: {declared}")
    kept = set(in_shard((a.name for a in accounts), shard))
    return tuple(a for a in accounts if (not names or a.name in names) and a.name in kept)


def build_run(
    obj: dict[str, Any],
    paths: Sequence[str],
    names: Sequence[str],
    ledger_path: str | None,
    no_ledger: bool,
    claim_seconds: float = 3600.0,
    *,
    shard: Shard | None = None,
) -> tuple[ApiAccess, LedgerStore | None]:
    """What a networked command needs: accounts, environment, client settings, ledger store.

    The ledger is None with ``--no-ledger``; else ``--ledger`` or the folder beside the
    manifests folder.
    """
    paths = paths or DEFAULT_PATHS
    accounts = build_accounts(paths, names, build_policy(obj), shard)
    settings = ClientSettings(
        request_timeout=obj["request_timeout"],
        spam_window=obj["spam_window"],
        unreachable_deadline=obj["unreachable_timeout"],
        max_concurrency=obj.get("max_concurrency")
        or concurrency_for(a.spec.queue_limit for a in accounts),
    )
    config = ApiAccess(accounts, os.environ, obj["api_base"], settings)
    store = None if no_ledger else open_ledger(ledger_path, paths, claim_seconds)
    return config, store


def echo_failures(failures: Sequence[AccountFailure]) -> None:
    """One line per account that could not be read, on stderr."""
    for failure in failures:
        message = safe_text(f"{failure.account}: {failure.message}")
        click.echo(f"error: {message} ({failure.reason})", err=True)


def echo_error(exc: ReconcilerError) -> None:
    """``error: …`` on stderr: one line per manifest problem, else the message on one line."""
    problems = exc.problems if isinstance(exc, ManifestError) else ()
    for line in [str(p) for p in problems] or [str(exc)]:
        click.echo(f"error: {safe_text(redact(line))}", err=True)


def stdin_is_terminal() -> bool:
    """Whether a person can answer a question (CI, cron and pipes cannot)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stdin
        return False


def build_on_plan(output: str, *, ask: bool) -> Callable[[PlanResult], None] | None:
    """What ``apply`` does with its plan before it sends anything: print it (text output, or
    on stderr to a person asked to approve it), and ask (:func:`confirm_plan`)."""
    if output != "text" and not ask:
        return None
    stream = sys.stdout if output == "text" else sys.stderr

    def on_plan(run: PlanResult) -> None:
        write_plan_text(run.plan, stream)
        if ask:
            confirm_plan(run.plan, stream, sys.stdin)

    return on_plan


#: Actions that send a request; a plan with none of them is not worth a question.
SENDING_ACTIONS = frozenset({Action.LOAD, Action.RELOAD, Action.REPLACE, Action.DELETE})


def confirm_plan(plan: Plan, stream: TextIO, answers: TextIO) -> None:
    """Ask, as Terraform does, whether to apply; anything but ``yes`` stops the run.

    Nothing is asked when no request would be sent or a guard blocks the plan (apply refuses
    it anyway). Raises ApplyDeclined (exit 1) before anything is sent.
    """
    accounts = [a for a in plan.accounts if any(c.action in SENDING_ACTIONS for c in a.changes)]
    if not accounts or plan.is_blocked():
        return
    noun = "account" if len(accounts) == 1 else "accounts"
    stream.write(f"\nApply these changes to {len(accounts)} {noun}? Only 'yes' is accepted: ")
    stream.flush()
    if answers.readline().strip() != "yes":
        raise ApplyDeclined("apply cancelled: the answer was not 'yes'; nothing was sent")


def std_streams() -> Streams:
    """The process's stdout and stderr, looked up when used (a test may have replaced them)."""
    return Streams(sys.stdout, sys.stderr)


# -- commands ---------------------------------------------------------------------------------


@cli.command()
@paths_argument
@account_option
@output_option(list(PLAN_RENDERERS))
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan for `apply PLANFILE`.",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option(
    "--comment",
    type=click.Choice(["true", "changes-only", "false"]),
    default="true",
    show_default=True,
    help="-o github on a pull request: the sticky plan comment, always, only with changes, or not.",
)
@max_deletes_option
@load_grace_option
@ledger_option
@no_ledger_option
@shard_option
@click.pass_obj
def plan(
    obj: dict[str, Any],
    paths: tuple[str, ...],
    account_names: tuple[str, ...],
    output: str | None,
    out_file: Path | None,
    detailed_exitcode: bool,
    comment: CommentMode,
    max_deletes: int,
    load_grace: float,
    ledger_path: str | None,
    no_ledger: bool,
    shard: Shard | None,
) -> int:
    """Read live state and show what apply would do."""
    output = github_mode(output, os.environ)
    step = (
        GithubStep.start(sys.stdout, os.environ, paths or DEFAULT_PATHS)
        if output == "github"
        else None
    )
    if step is not None and step.context.is_fork_pull:
        step.fork_notice()  # no secrets on a fork's pull request: validate only, never fail
        return validate_into(step, paths, account_names, "text", build_policy(obj))
    try:
        config, store = build_run(obj, paths, account_names, ledger_path, no_ledger, shard=shard)
    except ManifestError as exc:
        if step is None:
            raise
        write_problems_text(exc.problems, sys.stderr)
        step.invalid(exc.problems)
        return EXIT_FAILED
    ledger = store.read() if store else None
    run = run_sync(functools.partial(plan_accounts, config, ledger, max_deletes, load_grace))
    PLAN_RENDERERS[output](run.plan, std_streams())
    echo_failures(run.failures)
    if out_file is not None and not run.failures:  # an incomplete plan is never saved
        write_plan_file(run.plan, out_file)
    elif out_file is not None:
        click.echo(f"error: {out_file} not written: the plan is incomplete", err=True)
    blocked = PlanBlocked.failure_reason if run.plan.is_blocked() else ""
    if step is not None:
        reason = run.failures[0].reason if run.failures else blocked
        if step.planned(run.plan, reason, not run.failures, out_file, comment):
            return EXIT_FAILED
    if run.failures or run.plan.is_blocked():
        return EXIT_FAILED
    return EXIT_CHANGES if detailed_exitcode and run.plan.has_changes() else EXIT_OK


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str), metavar="[PLANFILE] [PATHS]...")
@account_option
@output_option(list(REPORT_RENDERERS))
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
@click.option(
    "--auto-approve",
    is_flag=True,
    help="Do not ask for confirmation on a terminal (without one, apply never asks); with "
    "-o github on a push, apply even without a reviewed plan, or one that changed.",
)
@click.option(
    "--drift-issue",
    is_flag=True,
    help="-o github: keep one 'Model drift (<account>)' issue per account that fails.",
)
@max_deletes_option
@load_grace_option
@ledger_option
@no_ledger_option
@shard_option
@click.pass_obj
def apply(
    obj: dict[str, Any],
    paths: tuple[str, ...],
    account_names: tuple[str, ...],
    output: str | None,
    no_wait: bool,
    timeout: float,
    poll_interval: float,
    auto_approve: bool,
    drift_issue: bool,
    max_deletes: int,
    load_grace: float,
    ledger_path: str | None,
    no_ledger: bool,
    shard: Shard | None,
) -> int:
    """Converge the accounts on the manifests (or on a saved plan), wait, and report.

    On a terminal, the plan is shown and applied only when the answer is ``yes``, unless
    ``--auto-approve``; a saved plan was reviewed already and is not asked about again.
    """
    plan_file, manifest_paths = split_plan_file(paths)
    output = github_mode(output, os.environ)
    # A claim on a shared ledger outlives the run's deadline a little, never much more.
    claim_seconds = timeout + 600.0
    if output == "github":
        return apply_github(
            obj,
            plan_file,
            manifest_paths,
            account_names,
            ApplyOptions(
                wait=not no_wait,
                timeout=timeout,
                poll_interval=poll_interval,
                load_grace=load_grace,
            ),
            (auto_approve, drift_issue, max_deletes),
            (ledger_path, no_ledger, claim_seconds, shard),
        )
    config, store = build_run(
        obj, manifest_paths, account_names, ledger_path, no_ledger, claim_seconds, shard=shard
    )
    saved = read_plan_file(plan_file) if plan_file is not None else None
    options = ApplyOptions(
        wait=not no_wait, timeout=timeout, poll_interval=poll_interval, load_grace=load_grace
    )
    ask = not auto_approve and saved is None and stdin_is_terminal()

    def show(report: ApplyReport) -> int:
        REPORT_RENDERERS[output](report, std_streams())
        return EXIT_OK if report.ok() else EXIT_FAILED

    with refusals_reported(obj, REFUSALS, show):
        report = apply_with_ledger(
            config,
            store,
            options,
            saved=saved,
            max_deletes=max_deletes,
            on_plan=build_on_plan(output, ask=ask),
            progress=_progress(sys.stderr),
        )
    return show(report)


def apply_github(
    obj: dict[str, Any],
    plan_file: Path | None,
    paths: Sequence[str],
    account_names: Sequence[str],
    options: ApplyOptions,
    flags: tuple[bool, bool, int],
    ledger: tuple[str | None, bool, float, Shard | None],
) -> int:
    """``apply -o github``: masks, the review gate on a push, the text plan and report on
    stdout, then annotations, summary, outputs and drift issues."""
    auto_approve, drift_issue, max_deletes = flags
    ledger_path, no_ledger, claim_seconds, shard = ledger
    step = GithubStep.start(sys.stdout, os.environ, paths)
    try:
        config, store = build_run(
            obj, paths, account_names, ledger_path, no_ledger, claim_seconds, shard=shard
        )
    except ManifestError as exc:
        write_problems_text(exc.problems, sys.stderr)
        step.invalid(exc.problems)
        return EXIT_FAILED
    seen: list[Plan] = []

    def show(report: ApplyReport) -> int:
        REPORT_RENDERERS["github"](report, std_streams())
        step.applied(report, seen[0] if seen else None, config.accounts, None, drift_issue)
        return EXIT_OK if report.ok() else EXIT_FAILED

    # Without the review, nothing may be applied: any expected error refuses the run.
    with refusals_reported(obj, (ReconcilerError,), show):
        review = step.review(auto_approve)

    def on_plan(run: PlanResult) -> None:
        seen.append(run.plan)
        PLAN_RENDERERS["github"](run.plan, std_streams())
        step.check_reviewed(run.plan, review, auto_approve)

    saved = read_plan_file(plan_file) if plan_file is not None else None
    with refusals_reported(obj, REFUSALS, show):
        report = apply_with_ledger(
            config,
            store,
            options,
            saved=saved,
            max_deletes=max_deletes,
            on_plan=on_plan,
            progress=_progress(sys.stderr),
        )
    return show(report)


@cli.command()
@paths_argument
@account_option
@click.option("-o", "--output", type=click.Choice(list(STATUS_RENDERERS)), default="text")
@ledger_option
@no_ledger_option
@shard_option
@click.pass_obj
def status(
    obj: dict[str, Any],
    paths: tuple[str, ...],
    account_names: tuple[str, ...],
    output: str,
    ledger_path: str | None,
    no_ledger: bool,
    shard: Shard | None,
) -> int:
    """Show every declared and unmanaged model with its live condition."""
    config, store = build_run(obj, paths, account_names, ledger_path, no_ledger, shard=shard)
    live, failures = run_sync(functools.partial(read_status, config))
    rows = status_rows(config.accounts, live, store.read() if store else None)
    STATUS_RENDERERS[output](rows, std_streams())
    echo_failures(failures)
    return EXIT_FAILED if failures else EXIT_OK


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--account", required=True, help="Name of the account the manifest declares.")
@click.option(
    "--api",
    type=click.Choice(API_KINDS),
    callback=_as_api_kind,
    required=True,
    help="community (v3/v4 endpoints) or enterprise (a dedicated server, v1/enterprise).",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.option(
    "--github",
    is_flag=True,
    help="Also write the plan, apply and reconcile workflows into .github/workflows/ of the "
    "folder above DIRECTORY (the repository's root).",
)
@click.option(
    "--action",
    default=DEFAULT_ACTION,
    show_default=True,
    help="With --github: the action the workflows use, OWNER/REPO@COMMIT_SHA.",
)
def init(
    directory: Path | None,
    account: str,
    api: ApiKind,
    force: bool,
    github: bool,
    action: str,
) -> int:
    """Write a starter manifest DIRECTORY/ACCOUNT.yaml (default: manifests/) and its schema."""
    folder = directory or DEFAULT_DIRECTORY
    for path, what in write_starter(starter_files(folder, account, api), force=force):
        note = (
            " (another version's: `reconciler schema --write` updates it)" if what == "kept" else ""
        )
        click.echo(f"{path}: {what}{note}")
    if github:
        root = folder.resolve().parent
        for path in write_workflows(root, action, force=force, key_env=key_env_for(account)):
            click.echo(f"{path}: written")
        click.echo(
            f"Add the repository secret {key_env_for(account)} with the account's API key, and "
            "pin --action to a commit SHA if you have not."
        )
    click.echo(
        f"Next: put the account's API key in {key_env_for(account)}, then\n"
        f"  reconciler validate {folder}\n  reconciler plan {folder}"
    )
    return EXIT_OK


@cli.command()
@paths_argument
@click.option("--account", "account_name", required=True, help="The account to export.")
@click.option(
    "--api",
    "api_kind",
    type=click.Choice(API_KINDS),
    callback=_as_api_kind,
    help="The account's API, when no manifest under PATHS declares the account.",
)
@click.option(
    "--key-env",
    metavar="NAME",
    help="Variable holding the key, when no manifest declares the account "
    "[default: MODELSLAB_KEY_<ACCOUNT>].",
)
@click.option(
    "--api-base",
    "export_api_base",
    metavar="URL",
    help="API base URL ending in /api/ (as the global --api-base; this one wins).",
)
@click.option(
    "-o",
    "--output",
    "target",
    metavar="FILE|-",
    help="Where to write the manifest: a new file, or - for stdout [default: -].",
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists (never a symlink).")
@click.option(
    "--adopt",
    is_flag=True,
    help="Instead of exporting: record the account's declared models that are live (the "
    "filled-in export under PATHS) in the ledger as managed.",
)
@ledger_option
@no_ledger_option
@click.pass_obj
def export(
    obj: dict[str, Any],
    paths: tuple[str, ...],
    account_name: str,
    api_kind: Api | None,
    key_env: str | None,
    export_api_base: str | None,
    target: str | None,
    force: bool,
    adopt: bool,
    ledger_path: str | None,
    no_ledger: bool,
) -> int:
    """Write a live account as a manifest (to adopt what exists), or with --adopt record it.

    Two steps: export writes every model on the account, with the fields the ledger knows and
    FILL-IN placeholders for the others (validate rejects them); fill them in, then
    export --adopt records the declared, live models as managed with what was declared.
    """
    if export_api_base is not None:
        obj = {**obj, "api_base": export_api_base}
    policy = build_policy(obj)
    manifest_paths = paths or DEFAULT_PATHS
    if adopt:
        if target is not None or api_kind is not None or key_env is not None:
            raise click.UsageError("--adopt reads the declared account: no -o, --api, --key-env")
        if no_ledger:
            raise click.UsageError("--adopt records in the ledger: it cannot run with --no-ledger")
        (account,) = build_accounts(manifest_paths, [account_name], policy)
    else:
        account = export_account(
            manifest_paths, bool(paths), account_name, api_kind, key_env, policy
        )
    settings = ClientSettings(
        request_timeout=obj["request_timeout"],
        spam_window=obj["spam_window"],
        unreachable_deadline=obj["unreachable_timeout"],
        max_concurrency=obj.get("max_concurrency") or concurrency_for([account.spec.queue_limit]),
    )
    config = ApiAccess((account,), os.environ, obj["api_base"], settings)
    live, failures = run_sync(functools.partial(read_status, config))
    if failures:
        echo_failures(failures)
        return EXIT_FAILED
    store = None if no_ledger else open_ledger(ledger_path, manifest_paths)
    # Imported here, as in export_account: only this command needs them (plan starts sooner).
    from reconciler.adopt import adopt_account
    from reconciler.export import ExportAccount, export_manifest

    if adopt and store is not None:
        return echo_adoptions(account, *adopt_account(store, account, live[account.name]))
    entries = store.read().entries(account.name) if store is not None else {}
    to_stdout = target in (None, "-")
    folder = _first_folder(manifest_paths) if to_stdout or target is None else Path(target).parent
    schema_ref = Path(os.path.relpath(folder.parent / schema_files.SCHEMA_FILE, folder)).as_posix()
    result = export_manifest(ExportAccount.of(account), live[account.name], entries, schema_ref)
    if to_stdout or target is None:
        sys.stdout.write(result.text)
    else:
        write_new_file(Path(target), result.text, force=force)
    name = safe_text(account.name)
    where = "" if to_stdout or target is None else f" to {safe_text(target)}"
    click.echo(
        f"{name}: exported {len(result.known) + len(result.placeholders)} models{where} "
        f"({len(result.known)} with fields from the ledger, {len(result.placeholders)} with "
        f"fields to fill in); {len(result.evicted)} evicted, listed in a comment",
        err=True,
    )
    if result.placeholders:
        click.echo(
            "Next: replace every FILL-IN value (`reconciler validate` lists them), then "
            f"`reconciler export --account {name} --adopt` to record the models as managed.",
            err=True,
        )
    for model_id in result.skipped:
        click.echo(
            f"warning: {name}: model {safe_text(model_id)!r} left out: a manifest cannot "
            "declare this id",
            err=True,
        )
    return EXIT_OK


def _first_folder(paths: Sequence[str]) -> Path:
    first = Path(paths[0])
    return first if first.is_dir() or not first.suffix else first.parent


def export_account(
    paths: Sequence[str],
    explicit: bool,
    name: str,
    api: Api | None,
    key_env: str | None,
    policy: TrustPolicy,
) -> LoadedAccount:
    """The account ``export`` reads: declared under ``paths``, else given by ``--api``.

    Without ``--api``, the manifests must be valid and declare it. With ``--api``, manifests
    that cannot be read (no default folder yet, placeholders of an earlier export) do not stop
    the export, but one that declares the account with another API does.
    """
    if not explicit and not any(Path(p).exists() for p in paths) and api is not None:
        accounts: tuple[LoadedAccount, ...] = ()
    else:
        try:
            accounts = load_manifests(paths, policy)
        except ManifestError as exc:
            if api is None:
                raise
            noun = "problem" if len(exc.problems) == 1 else "problems"
            click.echo(
                f"warning: the manifests under {safe_text(', '.join(paths))} were not read "
                f"({len(exc.problems)} {noun}; `reconciler validate` lists them): using --api",
                err=True,
            )
            accounts = ()
    declared = next((a for a in accounts if a.name == name), None)
    if declared is not None:
        other_api = api is not None and api != declared.api
        if other_api or key_env not in (None, declared.spec.key_env):
            raise ConfigError(
                f"{declared.file}:{declared.line}: account {name!r} is declared there with "
                "other settings; leave out --api and --key-env to use them"
            )
        return declared
    if api is None:
        raise ConfigError(
            f"account {name!r} is not declared under {', '.join(paths)}: give --api "
            f"community|enterprise (and --key-env, default {key_env_for(name)})"
        )
    from reconciler.export import command_line_account  # only export needs it

    return command_line_account(name, api, key_env or key_env_for(name), policy)


def write_new_file(path: Path, text: str, *, force: bool) -> None:
    """Write an exported manifest: never over a file without ``force``, never via a symlink."""
    exists = f"{path} already exists; nothing was written (--force overwrites)"
    if os.path.lexists(path) and not force:
        raise ConfigError(exists)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text, 0o644, overwrite=force)
    except FileExistsError as exc:  # it appeared since the check: still never overwritten
        raise ConfigError(exists) from exc
    except SymlinkRefused as exc:
        raise ConfigError(f"{path} is a symbolic link; refusing to write through it") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def echo_adoptions(account: LoadedAccount, decided: Sequence[Any], notices: Sequence[str]) -> int:
    """One line per declared model (what ``--adopt`` did), then a count."""
    for notice in notices:
        click.echo(f"note: {safe_text(notice)}", err=True)
    for adoption in decided:
        click.echo(f"  {adoption.outcome:<12} {safe_text(adoption.model_id)}: {adoption.reason}")
    adopted = sum(1 for a in decided if a.outcome == "adopted")
    noun = "model" if adopted == 1 else "models"
    click.echo(f"{safe_text(account.name)}: {adopted} {noun} adopted; the ledger manages them now.")
    return EXIT_OK


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
    code = run(args)
    startup.before_exit()
    sys.exit(code)


#: Where a command leaves its :class:`Refusal` in the object the boundary shares with it.
REFUSAL = "refusal"


@dataclass(frozen=True)
class Refusal:
    """How the running ``apply`` shows a run refused before it sent anything.

    ``errors`` are the exceptions that mean a refusal at this point of the command; ``show``
    renders the refused report and gives the exit code. The boundary (:func:`run`) uses it.
    """

    errors: tuple[type[ReconcilerError], ...]
    show: Callable[[ApplyReport], int]


@contextlib.contextmanager
def refusals_reported(
    obj: dict[str, Any],
    errors: tuple[type[ReconcilerError], ...],
    show: Callable[[ApplyReport], int],
) -> Iterator[None]:
    """Within the block, ``errors`` refuse the run: the boundary shows a refused report
    (:func:`~reconciler.engine.refused_report`) instead of an error line.

    Nothing is caught here. The refusal stays in ``obj`` when the block raises, for the
    boundary to find; it is withdrawn when the block ends normally.
    """
    obj[REFUSAL] = Refusal(errors, show)
    yield
    del obj[REFUSAL]


def run(args: list[str]) -> int:
    """Run the CLI with ``args`` and return the exit code instead of exiting."""
    shared: dict[str, Any] = {}
    return _boundary(
        args,
        lambda: cli.main(args=args, prog_name="reconciler", standalone_mode=False, obj=shared),
        shared,
    )


def _boundary(args: list[str], call: Callable[[], Any], shared: dict[str, Any]) -> int:
    """The one error boundary: every exception of a command becomes an exit code here.

    Expected errors print one line and exit 1, unless the command declared them a refusal of
    ``apply`` (:func:`refusals_reported`): then the refused report is shown, inside the
    boundary too. Ctrl-C exits 130; anything else is a bug: a crash log, a hint, exit 3.
    """
    debug = "--debug" in args
    try:
        result = call()
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_FAILED
    except ReconcilerError as exc:
        refusal = shared.pop(REFUSAL, None)
        if not (isinstance(refusal, Refusal) and isinstance(exc, refusal.errors)):
            echo_error(exc)
            return EXIT_FAILED
        refused: ReconcilerError = exc
    except Exception as exc:  # the boundary for bugs: anything unexpected
        trace = traceback.format_exc()
        if debug:
            for line in redact(trace).splitlines():
                click.echo(safe_text(line), err=True)
        log = write_crash_log(args, trace, os.environ)
        where = f"the crash log {log}" if log is not None else "the output of --debug"
        click.echo(
            f"internal error: {type(exc).__name__}: {safe_text(redact(str(exc)))}\n"
            f"This is a bug in reconciler; please report it with {safe_text(where)}.",
            err=True,
        )
        return EXIT_BUG
    else:
        return result if isinstance(result, int) else EXIT_OK
    # A refused apply: its report is shown inside the boundary too (showing it may fail).
    return _boundary(args, lambda: refusal.show(refused_report(refused)), shared)
