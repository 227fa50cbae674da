"""What a reviewer approves, and which shard runs an account. Pure: no I/O, no clock.

``plan_hash`` (design.md §8) covers the *reviewed intent* only: per account and model the
load, replace and delete actions with the spec hash each would send. Repairs the schedule would
do anyway (reload of an evicted model, waiting for a running load), timestamps, commit SHAs and
live fingerprints are left out on purpose, so a model evicted between review and merge does not
make the merge-time plan "different", while a new load, replace or delete does.

``shard_of`` splits accounts over N jobs by a stable hash of the account name: sha256 is the
same on every machine and Python version (unlike ``hash()``, which is salted per process).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.core.plan import Action, Plan

#: The actions a reviewer approves; reload and wait are repairs, never part of the intent.
REVIEWED_ACTIONS = (Action.LOAD, Action.REPLACE, Action.DELETE)


def reviewed_intent(plan: Plan) -> list[tuple[str, str, str, str]]:
    """``(account, model_id, action, spec_hash)`` of every reviewed action, sorted."""
    return sorted(
        (account.account, change.model_id, change.action.value, change.spec_hash)
        for account in plan.accounts
        for change in account.changes
        if change.action in REVIEWED_ACTIONS
    )


def plan_hash(plan: Plan) -> str:
    """``sha256:<hex>`` of the sorted reviewed intent; equal intents give equal hashes."""
    text = json.dumps(reviewed_intent(plan), separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``: ``--shard 2/4`` is the second of four."""

    index: int
    count: int

    def holds(self, account: str) -> bool:
        """Whether this shard runs ``account``."""
        return shard_of(account, self.count) == self.index


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> Shard:
    """``"I/N"`` with 1 <= I <= N as a :class:`Shard`.

    Raises:
        ValueError: the text is not of that form (the message says what was expected).
    """
    match = _SHARD.match(text)
    if not match:
        raise ValueError(f"shard {text!r} is not of the form I/N, e.g. 1/4")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {text!r}: I must be between 1 and N, and N at least 1")
    return Shard(index, count)


def shard_of(account: str, count: int) -> int:
    """The 1-based shard of ``account`` among ``count``: sha256 of its name, modulo ``count``."""
    digest = hashlib.sha256(account.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(names: Iterable[str], shard: Shard | None) -> list[str]:
    """The names ``shard`` runs, in their order; all of them without a shard."""
    return [name for name in names if shard is None or shard.holds(name)]
