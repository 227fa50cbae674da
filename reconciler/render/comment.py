"""Bodies GitHub shows to people: the sticky PR comment and the drift issue. Strings only.

The PR comment (design.md §8) starts with a hidden marker that carries the plan's
``plan_hash``, so a later run finds and edits its own comment, and the merge-time apply can
check it applies what was reviewed. Below it: a one-line summary, a table per account, and the
whole text plan folded in a ``<details>``. GitHub refuses bodies over 65,536 characters; we cut
at :data:`COMMENT_LIMIT` on a line boundary, close whatever code fence and ``<details>`` the
cut left open, and say so in a note.

The drift issue's body carries its own marker (kind ``drift`` and the account) and a hidden
fingerprint of the failure, so a run can tell a changed failure (worth a comment) from the same
one seen again (not worth a comment every six hours).

This module never posts anything and never holds a key: plans and reports carry none.
"""

from __future__ import annotations

import hashlib
import io
import json
import re

from reconciler.core.plan import Action, Plan
from reconciler.core.report import AccountReport
from reconciler.render.plan_text import change_counts, other_counts, write_plan_text
from reconciler.render.report import account_report_lines

#: A comment body is cut to stay under this many characters (GitHub's limit is 65,536).
COMMENT_LIMIT = 60_000
PLAN_MARKER_PREFIX = '<!-- reconciler {"v":1,"kind":"plan"'
DRIFT_MARKER_PREFIX = '<!-- reconciler {"v":1,"kind":"drift"'
_FAILURE_PREFIX = "<!-- reconciler-failure: "
_COUNTED = (Action.LOAD, Action.RELOAD, Action.REPLACE, Action.DELETE, Action.WAIT, Action.BLOCKED)
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def plan_marker(plan_hash: str) -> str:
    """``<!-- reconciler {"v":1,"kind":"plan","plan_hash":"…"} -->``."""
    data = json.dumps({"v": 1, "kind": "plan", "plan_hash": plan_hash}, separators=(",", ":"))
    return f"<!-- reconciler {data} -->"


def drift_marker(account: str) -> str:
    """``<!-- reconciler {"v":1,"kind":"drift","account":"…"} -->``."""
    data = json.dumps({"v": 1, "kind": "drift", "account": account}, separators=(",", ":"))
    return f"<!-- reconciler {data} -->"


def read_marker(body: str) -> dict[str, object] | None:
    """The JSON of a reconciler marker on the first line of ``body``; None if there is none."""
    first = body.split("\n", 1)[0].strip()
    if not (first.startswith("<!-- reconciler {") and first.endswith("} -->")):
        return None
    try:
        data = json.loads(first[len("<!-- reconciler ") : -len(" -->")])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def plan_summary_line(plan: Plan) -> str:
    """``**Reconciler plan:** 1 to load, … · 1 blocked, 3 unchanged`` (one line)."""
    if plan.has_changes():
        text = f"{change_counts(plan)} · {other_counts(plan)}"
    else:
        text = f"no changes · {other_counts(plan)}"
    if plan.unread:
        text += f" · **incomplete:** could not read {', '.join(plan.unread)}"
    if plan.is_blocked():
        text += " · **apply will refuse to run**"
    return f"**Reconciler plan:** {text}"


def account_table(plan: Plan) -> str:
    """One row per account with its counts of each kind of change."""
    head = "| account | api | " + " | ".join(a.value for a in _COUNTED) + " |\n"
    rule = "|---|---|" + "---:|" * len(_COUNTED) + "\n"
    rows = []
    for account in plan.accounts:
        counts = {a: sum(1 for c in account.changes if c.action is a) for a in _COUNTED}
        cells = " | ".join(str(counts[a]) for a in _COUNTED)
        rows.append(f"| `{_cell(account.account)}` | {account.api} | {cells} |\n")
    if not rows:
        return "_No account was planned._\n"
    return head + rule + "".join(rows)


def plan_text(plan: Plan) -> str:
    """The plan as ``reconciler plan`` prints it."""
    buffer = io.StringIO()
    write_plan_text(plan, buffer)
    return buffer.getvalue()


def render_plan_comment(plan: Plan, plan_hash: str, *, limit: int = COMMENT_LIMIT) -> str:
    """The sticky PR comment for ``plan``, at most ``limit`` characters."""
    text = plan_text(plan)
    fence = fence_for(text)
    body = (
        f"{plan_marker(plan_hash)}\n"
        f"{plan_summary_line(plan)}\n\n"
        f"{account_table(plan)}\n"
        "<details><summary>Plan</summary>\n\n"
        f"{fence}text\n{text}{fence}\n\n"
        "</details>\n\n"
        f"<sub>plan_hash `{plan_hash}`: merging applies exactly this intent.</sub>\n"
    )
    note = (
        "_This comment was cut to fit GitHub's size limit; run `reconciler plan` or see the "
        "job summary for the full plan._"
    )
    return cut_markdown(body, limit, note)


def cut_markdown(text: str, limit: int, note: str) -> str:
    """``text`` if it fits in ``limit`` characters; else its first whole lines, with open code
    fences and ``<details>`` closed, then ``note``.

    The cut never splits a line, so a table row or a marker is whole or absent.
    """
    if len(text) <= limit:
        return text
    kept: list[str] = []
    used = 0
    fence: str | None = None
    details = 0
    for line in text.splitlines(keepends=True):
        closing = _closing(fence, details)
        if used + len(line) + len(closing) + len(note) + 2 > limit:
            break
        kept.append(line)
        used += len(line)
        fence, details = _track(line, fence, details)
    return "".join(kept) + _closing(fence, details) + "\n" + note + "\n"


def _track(line: str, fence: str | None, details: int) -> tuple[str | None, int]:
    """The open fence and the ``<details>`` depth after ``line``."""
    match = _FENCE_LINE.match(line.rstrip("\n"))
    if fence is not None:
        if match and match[1][0] == fence[0] and len(match[1]) >= len(fence) and not match[2]:
            return None, details
        return fence, details
    if match:
        return match[1], details
    details += line.count("<details") - line.count("</details>")
    return None, max(details, 0)


def _closing(fence: str | None, details: int) -> str:
    return (f"{fence}\n" if fence else "") + "\n</details>\n" * details


def fence_for(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")


# -- drift issues -----------------------------------------------------------------------------


def drift_title(account: str) -> str:
    """``Model drift (<account>)``."""
    return f"Model drift ({account})"


def failure_fingerprint(report: AccountReport) -> str:
    """A short hash of what failed and why, ignoring times: equal failures, equal prints."""
    parts = [report.failure_reason or "", *report.remaining]
    parts += sorted(
        f"{i.model_id}:{i.action.value}:{i.outcome.value}:{i.failure_reason or ''}"
        for i in report.items
        if i.failure_reason is not None
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def drift_body(report: AccountReport, run_url: str) -> str:
    """The drift issue's body: marker, what failed, the fingerprint of the failure."""
    lines = account_report_lines(report)
    fence = fence_for("\n".join(lines))
    link = f"\n\nLast seen by [this run]({run_url})." if run_url else ""
    body = (
        f"{drift_marker(report.account)}\n"
        f"The scheduled repair of account `{_cell(report.account)}` did not converge "
        f"(`{report.failure_reason or 'not-converged'}`).{link}\n\n"
        f"{fence}text\n" + "\n".join(lines) + f"\n{fence}\n\n"
        "This issue closes itself when a later run converges the account.\n"
        f"{_FAILURE_PREFIX}{failure_fingerprint(report)} -->\n"
    )
    return cut_markdown(body, COMMENT_LIMIT, "_Cut to fit GitHub's size limit._")


def drift_fingerprint_of(body: str) -> str:
    """The failure fingerprint stored in a drift issue's body, or ``""``."""
    start = body.rfind(_FAILURE_PREFIX)
    if start < 0:
        return ""
    return body[start + len(_FAILURE_PREFIX) :].split(" -->", 1)[0].strip()


def drift_update_comment(report: AccountReport, reopened: bool) -> str:
    """The comment added when a failure comes back or changes."""
    verb = "The drift is back" if reopened else "The failure changed"
    lines = account_report_lines(report)
    fence = fence_for("\n".join(lines))
    body = f"{verb} (`{report.failure_reason or 'not-converged'}`):\n\n{fence}text\n"
    body += "\n".join(lines) + f"\n{fence}\n"
    return cut_markdown(body, COMMENT_LIMIT, "_Cut to fit GitHub's size limit._")


def drift_resolved_comment(account: str, run_url: str) -> str:
    """The comment that closes a drift issue."""
    link = f" ([run]({run_url}))" if run_url else ""
    return f"Account `{_cell(account)}` converged{link}; closing."


def marker_matches(body: str, kind: str, **fields: str) -> bool:
    """Whether ``body`` starts with a reconciler marker of ``kind`` with these fields."""
    data = read_marker(body)
    if data is None or data.get("v") != 1 or data.get("kind") != kind:
        return False
    return all(data.get(name) == value for name, value in fields.items())
