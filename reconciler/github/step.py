"""One ``reconciler`` command run as a GitHub Actions step (``-o github``): the wiring.

The CLI calls a :class:`GithubStep` at fixed points of validate, plan and apply; the step
writes, in this order, ``::add-mask::`` for every key, the command's usual text on stdout
(untouched), annotations, the job summary and the outputs, and talks to GitHub for the PR
comment, the review gate and the drift issues. Strings come from :mod:`reconciler.render`;
requests to GitHub go through :mod:`reconciler.github.client`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import httpx

from reconciler.core.intent import plan_hash
from reconciler.core.plan import Plan
from reconciler.core.report import ApplyReport
from reconciler.errors import ManifestProblem, ReconcilerError, StalePlanError
from reconciler.github.flow import (
    CommentMode,
    GithubContext,
    Review,
    gate,
    reviewed_plan_hash,
    sync_drift_issues,
    upsert_plan_comment,
)
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.models import LoadedAccount
from reconciler.planfile import write_plan_file
from reconciler.render.comment import render_plan_comment
from reconciler.render.github import (
    GithubSink,
    apply_summary,
    capped,
    mask_commands,
    plan_annotations,
    plan_outputs,
    plan_summary,
    problem_annotations,
    report_annotations,
    validate_summary,
)

#: Variables whose values are masked even when the manifests cannot be read (design.md §7:
#: key variables start with this by default).
KEY_PREFIX = "MODELSLAB_"
PLAN_FILE_NAME = "reconciler-plan.json"


def github_mode(output: str | None, environ: Mapping[str, str]) -> str:
    """The output format: the one asked for, else ``github`` inside GitHub Actions."""
    if output:
        return output
    return "github" if environ.get("GITHUB_ACTIONS") == "true" else "text"


@dataclass
class GithubStep:
    """The GitHub side of one command; build it with :meth:`start`, which masks keys first."""

    sink: GithubSink
    context: GithubContext
    environ: Mapping[str, str]
    transport: httpx.BaseTransport | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        stream: TextIO,
        environ: Mapping[str, str],
        paths: Sequence[str],
        transport: httpx.BaseTransport | None = None,
    ) -> GithubStep:
        """Mask every key the manifests name (and every ``MODELSLAB_*`` variable) before
        anything else is printed, then read the event."""
        sink = GithubSink.from_environ(stream, environ)
        sink.commands(mask_commands(_key_values(paths, environ)))
        return cls(sink, GithubContext.from_environ(environ), environ, transport)

    # -- validate -----------------------------------------------------------------------------

    def invalid(self, problems: Sequence[ManifestProblem]) -> None:
        """Annotate bad manifests, summarise them and set ``failure_reason``."""
        shown, omitted = capped(problem_annotations(problems))
        self.sink.commands(a.command() for a in shown)
        self.sink.summary(validate_summary(problems, [], omitted))
        self.sink.outputs(plan_outputs(None, "", "invalid-manifest", ""))

    def valid(self, accounts: Sequence[LoadedAccount]) -> None:
        """Summarise a clean validation."""
        names = [a.name for a in accounts]
        self.sink.summary(validate_summary([], names, {}))
        self.sink.outputs(plan_outputs(None, "", "", ""))

    def fork_notice(self) -> None:
        """Say why a pull request from a fork is only validated."""
        self.sink.notice(
            "This pull request comes from a fork, which gets no secrets: the manifests were "
            "validated offline; the plan runs once the branch is in this repository."
        )

    # -- plan ---------------------------------------------------------------------------------

    def planned(
        self,
        plan: Plan,
        failure_reason: str,
        complete: bool,
        out_file: Path | None,
        comment: CommentMode,
    ) -> list[str]:
        """Annotations, plan file, summary, outputs and the PR comment; return errors."""
        digest = plan_hash(plan)
        shown, omitted = capped(plan_annotations(plan))
        self.sink.commands(a.command() for a in shown)
        path = self._save_plan(plan, out_file) if complete else ""
        errors: list[str] = []
        number = self.context.pull_number
        if number is not None and comment != "false":
            try:
                with self.context.client(self.transport) as client:
                    done = upsert_plan_comment(
                        client,
                        number,
                        render_plan_comment(plan, digest),
                        comment,
                        plan.has_changes(),
                    )
                self.notes.append(done)
            except ReconcilerError as exc:
                errors.append(f"the plan comment could not be written: {exc}")
        self.sink.summary(plan_summary(plan, digest, omitted, [*self.notes, *errors]))
        self.sink.outputs(plan_outputs(plan, digest, failure_reason, path))
        self.sink.commands(f"::error::{e}" for e in errors)
        return errors

    def _save_plan(self, plan: Plan, out_file: Path | None) -> str:
        if out_file is None:
            folder = Path(self.environ.get("RUNNER_TEMP") or tempfile.gettempdir())
            out_file = folder / PLAN_FILE_NAME
        write_plan_file(plan, out_file)
        return str(out_file)

    # -- apply --------------------------------------------------------------------------------

    def review(self, auto_approve: bool) -> Review | None:
        """What was reviewed for this push (None when no gate applies).

        Raises:
            ReconcilerError: GitHub could not say (the run must then not apply).
        """
        if auto_approve or not self.context.is_push:
            return None
        with self.context.client(self.transport) as client:
            return reviewed_plan_hash(client, self.context.sha)

    def check_reviewed(self, plan: Plan, review: Review | None, auto_approve: bool) -> None:
        """Refuse (``plan-changed``) a plan other than the reviewed one, before any request."""
        refusal = gate(review, plan_hash(plan), auto_approve)
        if refusal is not None:
            raise StalePlanError(refusal)
        if review is not None:
            self.notes.append(f"applying the plan reviewed in pull request #{review.pull_number}")

    def applied(
        self,
        report: ApplyReport,
        plan: Plan | None,
        accounts: Sequence[LoadedAccount],
        out_file: Path | None,
        drift_issue: bool,
    ) -> None:
        """Annotations, summary with its heartbeat, outputs and drift issues of an apply."""
        shown, omitted = capped(report_annotations(report, _origins(accounts)))
        self.sink.commands(a.command() for a in shown)
        if drift_issue and not report.refused:
            try:
                with self.context.client(self.transport) as client:
                    self.notes.extend(sync_drift_issues(client, report, self.context.run_url))
            except ReconcilerError as exc:
                self.sink.commands([f"::warning::drift issues not updated: {exc}"])
                self.notes.append(f"drift issues not updated: {exc}")
        digest = plan_hash(plan) if plan is not None else ""
        path = self._save_plan(plan, out_file) if plan is not None and not plan.unread else ""
        self.sink.summary(apply_summary(report, plan, omitted, self._heartbeat(report), self.notes))
        self.sink.outputs(plan_outputs(plan, digest, report.failure_reason() or "", path))

    def _heartbeat(self, report: ApplyReport) -> str:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        converged = sum(1 for a in report.accounts if a.converged)
        where = f" on `{self.context.sha[:12]}`" if self.context.sha else ""
        event = f" ({self.context.event_name})" if self.context.event_name else ""
        return (
            f"Heartbeat: reconciler apply ran at {now}{where}{event}: "
            f"{converged} of {len(report.accounts)} accounts converged."
        )


def _key_values(paths: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    names = {name for name in environ if name.startswith(KEY_PREFIX)}
    # The command reports the manifests' problems itself; the prefix still masks.
    with contextlib.suppress(ReconcilerError):
        names.update(a.spec.key_env for a in load_manifests(paths))
    names.add("GITHUB_TOKEN")
    return [environ[name] for name in sorted(names) if environ.get(name, "").strip()]


def _origins(accounts: Sequence[LoadedAccount]) -> dict[str, str]:
    origins: dict[str, str] = {}
    for account in accounts:
        origins[account.name] = f"{account.file}:{account.line}"
        for model in account.desired():
            origins[f"{account.name}/{model.model_id}"] = account.origin(model.model_id)
    return origins


def environ() -> Mapping[str, str]:
    """The process environment (a seam for the CLI)."""
    return os.environ
