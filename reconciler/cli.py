"""The ``reconciler`` command line: parse, wire, render; nothing more.

Each command builds its collaborators, calls one function of the engine, renders the result
and returns an exit code. :func:`main` is the one error boundary (design.md §4): expected
errors (:class:`ReconcilerError`, bad usage) print one or two lines and exit 1, Ctrl-C exits
130, anything else is a bug and exits 3 with a hint to report it; no traceback unless
``--debug``.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click

from reconciler import __version__
from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifest.loader import load_manifests
from reconciler.render.diagnostics import write_problems_text, write_validation_json
from reconciler import schema as schema_files

EXIT_OK, EXIT_FAILED, EXIT_CHANGES, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option("--api-base", envvar="RECONCILER_API_BASE", help="API base URL ending in /api/.")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, api_base: str | None, debug: bool) -> None:
    """Keep the models on ModelsLab accounts equal to what YAML manifests declare."""
    ctx.obj = {"api_base": api_base, "debug": debug}


@cli.command()
@paths_argument
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
def validate(paths: tuple[str, ...], output: str) -> int:
    """Check manifests (schema and cross-file rules) without touching the network."""
    try:
        accounts = load_manifests(paths or ("manifests",))
    except ManifestError as exc:
        if output == "json":
            write_validation_json(exc.problems, [], sys.stdout)
        else:
            write_problems_text(exc.problems, sys.stderr)
        return EXIT_FAILED
    if output == "json":
        write_validation_json([], [a.name for a in accounts], sys.stdout)
    else:
        click.echo(f"{len(accounts)} accounts valid: {', '.join(a.name for a in accounts)}")
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
    if schema_files.schema_is_current():
        click.echo(f"{schema_files.SCHEMA_FILE}: up to date")
        return EXIT_OK
    click.echo(f"{schema_files.SCHEMA_FILE} is stale: run `reconciler schema --write`", err=True)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI inside the one error boundary and exit with a documented code."""
    args = list(sys.argv[1:] if argv is None else argv)
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
