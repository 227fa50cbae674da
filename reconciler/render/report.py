"""What an apply run did, as text or JSON: per account converged or not, then each item.

The report is built by ``apply``; this module only writes it to the stream it is given. It
never decides the exit code (the CLI takes that from :meth:`ApplyReport.ok`). Model ids and
messages (the API's own words) pass through :func:`~reconciler.render.safe_text.safe_text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from reconciler.core.report import AccountReport, ApplyReport, ItemReport, Outcome
from reconciler.render.safe_text import safe_json, safe_text

_ACTION_COLUMN = max(len("replace"), len("blocked"))


def write_report_text(report: ApplyReport, stream: TextIO) -> None:
    """Each account's verdict and items (unchanged items left out), then a closing line."""
    for account in report.accounts:
        for line in account_report_lines(account):
            stream.write(line + "\n")
    for note in report.notes:
        stream.write(f"note: {safe_text(note)}\n")
    stream.write(closing_line(report) + "\n")


def write_report_json(report: ApplyReport, stream: TextIO) -> None:
    """The report's model dump plus ``ok`` and the run's ``failure_reason``."""
    document = {
        **report.model_dump(mode="json"),
        "ok": report.ok(),
        "failure_reason": report.failure_reason(),
    }
    stream.write(safe_json(document))


def account_report_lines(account: AccountReport) -> list[str]:
    """``✓ studio-prod converged in 12.3s`` or ``✗ … not converged (reason): message``, items."""
    items = [item for item in account.items if item.outcome is not Outcome.UNCHANGED]
    width = max((len(safe_text(item.model_id)) for item in items), default=0)
    lines = [_verdict(account)]
    lines.extend(_item_line(item, width) for item in items)
    lines.extend(f"  remaining: {safe_text(change)}" for change in account.remaining)
    return lines


def closing_line(report: ApplyReport) -> str:
    """One line for the whole run."""
    if report.refused:
        return f"Apply refused ({report.failure_reason()}): {safe_text(report.refused)}"
    total = len(report.accounts)
    failed = sum(1 for account in report.accounts if not account.converged)
    waited = "" if report.waited else " Requests were sent without waiting (--no-wait)."
    if not failed:
        return f"Apply complete: {_accounts(total)} converged.{waited}"
    reason = report.failure_reason()
    why = f" ({reason})" if reason else ""
    return f"Apply failed: {failed} of {_accounts(total)} did not converge{why}.{waited}"


def _verdict(account: AccountReport) -> str:
    elapsed = f"{account.elapsed_seconds:.1f}s"
    if account.converged:
        return f"✓ {safe_text(account.account)} converged in {elapsed}"
    reason = f" ({account.failure_reason})" if account.failure_reason else ""
    message = f": {safe_text(account.message)}" if account.message else ""
    return f"✗ {safe_text(account.account)} not converged{reason}{message}"


def _item_line(item: ItemReport, width: int) -> str:
    model_id = safe_text(item.model_id)
    head = f"  {item.action.symbol} {item.action.value:<{_ACTION_COLUMN}}  {model_id:<{width}}"
    return f"{head}  {item.outcome.value}{_item_detail(item)}".rstrip()


def _item_detail(item: ItemReport) -> str:
    parts: Sequence[str] = [p for p in (item.failure_reason or "", item.message) if p]
    return "  " + safe_text(": ".join(parts)) if parts else ""


def _accounts(count: int) -> str:
    return "1 account" if count == 1 else f"{count} accounts"
