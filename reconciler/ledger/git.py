"""The ledger kept on a git branch, so that it survives CI (design.md §3, ``--ledger git:B``).

A GitHub Actions run starts from a fresh checkout: a ledger kept in a file would be gone, and
every spec change merged in git would be adopted silently instead of applied. So in CI the
ledger lives on an orphan branch (default ``reconciler-ledger``) of the repository the
manifests live in, holding only ledger files: one ``<account>.json`` per account, the same
files as a ledger folder (:mod:`reconciler.ledger.folder`).

How a run uses it, with the ``git`` command line and whatever credentials the checkout has:

1. fetch the branch; its account files are the ledger the plan is made from;
2. before anything is sent, **claim** the accounts the run will touch: write the run's claim
   into their files, commit and push. Two runs racing for one account: one push wins, the other
   is rejected, fetches, sees the account changed, and ends ``locked`` having sent nothing. A
   live claim found at start ends the run ``locked`` too; a claim whose run died (past its
   expiry, or its process gone on this host) is taken over, and said so;
3. record as the run goes in a local working folder under ``.git/`` (journal, O(1) a record);
4. push at checkpoints: when an account's part of the run ends (coalesced, off the event loop)
   and at the end, when the claims are cleared. A push rejected because another run pushed
   first is rebased and pushed again when the other run touched other accounts.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread

from reconciler.core.ledger_entries import (
    LEDGER_FORMAT_VERSION,
    LedgerEntry,
    LedgerState,
    parse_stamp,
    stamp,
)
from reconciler.errors import LedgerError, LedgerLocked
from reconciler.ledger.folder import (
    Claim,
    FolderLedger,
    FolderSession,
    parse_account_file,
)

DEFAULT_BRANCH = "reconciler-ledger"
REMOTE = "origin"
#: Pushes tried when other runs keep getting there first (each rebased on theirs).
PUSH_ATTEMPTS = 8
_IDENTITY = ("reconciler", "reconciler@localhost")

logger = logging.getLogger(__name__)


class GitError(LedgerError):
    """A git command failed; the message names the command and git's own words."""


class Git:
    """Runs ``git`` in one repository; every failure is a :class:`GitError`."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(
        self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``git ARGS`` and return the finished process, whatever its exit code."""
        try:
            return subprocess.run(
                ["git", "-C", str(self.repo), *args],
                input=stdin,
                capture_output=True,
                text=True,
                env={**_without_keys(os.environ), "GIT_TERMINAL_PROMPT": "0", **(env or {})},
                check=False,
            )
        except OSError as exc:
            raise GitError(f"cannot run git ({exc.strerror or exc}); is git installed?") from exc

    def out(
        self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        """Run ``git ARGS``; its stdout stripped, or GitError."""
        done = self.run(*args, stdin=stdin, env=env)
        if done.returncode != 0:
            raise GitError(f"git {args[0]} failed: {_last_line(done.stderr)}")
        return done.stdout.strip()


def _without_keys(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for git, without API key variables: hooks and helpers never see keys."""
    return {name: value for name, value in environ.items() if not name.startswith("MODELSLAB_")}


def find_repository(start: Path) -> Path:
    """The top folder of the git repository that holds ``start`` (a manifest path)."""
    folder = start if start.is_dir() else start.parent
    done = Git(folder if folder.exists() else Path.cwd()).run("rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise LedgerError(
            f"--ledger git: needs the manifests to be in a git repository, and {start} is not "
            "in one"
        )
    return Path(done.stdout.strip())


class GitBranchLedger:
    """The ledger on branch ``branch`` of the repository at ``repo`` (remote ``origin``)."""

    def __init__(self, repo: Path, branch: str = DEFAULT_BRANCH, claim_seconds: float = 3600.0):
        self.git = Git(repo)
        self.branch = branch
        self.claim_seconds = claim_seconds
        self._remote_ref = f"refs/reconciler/ledger/{branch}"

    def __repr__(self) -> str:
        return f"GitBranchLedger({str(self.git.repo)!r}, {self.branch!r})"

    @property
    def description(self) -> str:
        """Where the ledger is, for messages."""
        return f"git branch {self.branch} of {self.git.repo}"

    def _has_remote(self) -> bool:
        return REMOTE in self.git.out("remote").split()

    # -- reading ------------------------------------------------------------------------------

    def fetch(self) -> str | None:
        """Fetch the branch; its tip commit, or None when it does not exist yet."""
        if not self._has_remote():
            done = self.git.run("rev-parse", "--verify", "--quiet", f"refs/heads/{self.branch}")
            return done.stdout.strip() or None
        listed = self.git.out("ls-remote", REMOTE, f"refs/heads/{self.branch}")
        if not listed:
            return None
        self.git.out(
            "fetch", "--quiet", "--no-tags", REMOTE, f"+refs/heads/{self.branch}:{self._remote_ref}"
        )
        return self.git.out("rev-parse", self._remote_ref)

    def files_at(self, commit: str | None) -> dict[str, str]:
        """``{account: file text}`` of the account files at ``commit``."""
        if commit is None:
            return {}
        names = [
            name
            for name in self.git.out("ls-tree", "--name-only", commit).splitlines()
            if name.endswith(".json") and not name.startswith(".")
        ]
        return {name[: -len(".json")]: self.git.out("show", f"{commit}:{name}") for name in names}

    def read(self) -> LedgerState:
        """Fetch the branch and read its ledger (plan and status: nothing is written)."""
        accounts: dict[str, dict[str, LedgerEntry]] = {}
        for name, text in self.files_at(self.fetch()).items():
            document = parse_account_file(text, f"{self.description}: {name}.json")
            accounts[document.account] = dict(document.models)
        return LedgerState.model_construct(format_version=LEDGER_FORMAT_VERSION, accounts=accounts)

    # -- a run --------------------------------------------------------------------------------

    def _work_folder(self) -> Path:
        common = Path(self.git.out("rev-parse", "--git-common-dir"))
        if not common.is_absolute():
            common = self.git.repo / common
        return common / "reconciler" / "ledger" / self.branch

    @contextmanager
    def session(self) -> Iterator[GitSession]:
        """Fetch, lay the branch's files in the local working folder, yield, push at the end."""
        folder = FolderLedger(self._work_folder())
        folder.path.parent.mkdir(parents=True, exist_ok=True)
        with folder.session() as local:
            base = self.fetch()
            _lay_out(folder, self.files_at(base), local)
            session = GitSession(self, folder, local, base)
            try:
                yield session
            finally:
                session.finish()


def _lay_out(folder: FolderLedger, files: Mapping[str, str], local: FolderSession) -> None:
    """Make the working folder hold the branch's files; a local crash journal stays on top."""
    crashed = local.accounts_in_journal()
    for path in folder.account_files():
        if path.stem not in files and path.stem not in crashed:
            path.unlink()
    accounts: dict[str, dict[str, LedgerEntry]] = {}
    claims: dict[str, Claim] = {}
    for name, text in files.items():
        document = parse_account_file(text, f"{folder.path}/{name}.json")
        if name not in crashed:
            folder.write_account(name, document)
        accounts[document.account] = dict(document.models)
        if document.claim is not None:
            claims[document.account] = document.claim
    for name in crashed:
        accounts[name] = dict(local.current(name))
    local.reset(accounts, claims)


class GitSession:
    """One run's use of the git branch: the local session, plus claims and pushes."""

    def __init__(
        self, store: GitBranchLedger, folder: FolderLedger, local: FolderSession, base: str | None
    ) -> None:
        self.store = store
        self.folder = folder
        self.local = local
        self.base = base
        self.run_id = uuid.uuid4().hex[:12]
        self.claimed: set[str] = set()
        self._pending: set[str] = set()
        self._failed: set[str] = set()
        self._pushing = False
        self.notices: list[str] = []

    @property
    def state(self) -> LedgerState:
        """The ledger as the run found it on the branch."""
        return self.local.state

    def current_state(self, accounts: Collection[str]) -> LedgerState:
        """The current entries of ``accounts``, for re-planning them."""
        return self.local.current_state(accounts)

    def current(self, account: str) -> Mapping[str, LedgerEntry]:
        """One account's entries as this run has left them so far."""
        return self.local.current(account)

    async def record(self, account: str, model_id: str, entry: LedgerEntry | None) -> None:
        """Record locally (journal); pushed at the next checkpoint."""
        await self.local.record(account, model_id, entry)

    async def record_many(self, account: str, entries: Mapping[str, LedgerEntry | None]) -> None:
        """Record several entries locally with one journal write."""
        await self.local.record_many(account, entries)

    async def claim(self, accounts: Collection[str]) -> None:
        """Claim ``accounts`` on the branch before anything is sent; LedgerLocked if taken."""
        wanted = set(accounts) - self.claimed
        if wanted:
            await anyio.to_thread.run_sync(self._claim, wanted)

    def _claim(self, accounts: set[str]) -> None:
        for account in sorted(accounts):
            held = self.local.claims.get(account)
            if held is not None and held.run != self.run_id:
                if _is_live(held):
                    raise LedgerLocked(_claimed_message(account, held, self.store.description))
                notice = (
                    f"{account}: took over the claim of run {held.run} (pid {held.pid} on "
                    f"{held.host}), which ended without releasing it"
                )
                self.notices.append(notice)
                logger.warning("%s: %s", self.store.description, notice)
        now = datetime.now(UTC)
        claim = Claim(
            run=self.run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            at=stamp(now),
            expires=stamp(now + timedelta(seconds=self.store.claim_seconds)),
        )
        for account in accounts:
            self.local.claims[account] = claim
        self.claimed |= accounts
        self.local.compact(accounts)
        self._push(accounts, f"reconciler: claim {', '.join(sorted(accounts))}", claiming=True)

    async def checkpoint(self, accounts: Collection[str]) -> None:
        """Push ``accounts``' files (an account's part of the run ended); coalesced."""
        self._pending |= set(accounts) & (self.local.touched | self.claimed)
        if self._pushing:
            return  # the push under way takes these too
        self._pushing = True
        try:
            while self._pending:
                names, self._pending = self._pending, set()
                await self.local.checkpoint(names)
                try:
                    await anyio.to_thread.run_sync(
                        self._push, names, f"reconciler: record {', '.join(sorted(names))}"
                    )
                except LedgerError as exc:  # kept locally; the push at the end tries again
                    self.notices.append(f"checkpoint push failed, retried at the end: {exc}")
                    self._failed |= names
        finally:
            self._pushing = False

    def finish(self) -> None:
        """Release the claims, fold the journal, and push everything the run wrote."""
        for account in self.claimed:
            self.local.claims.pop(account, None)
        names = self.local.touched | self.claimed | self._pending | self._failed
        self.local.compact(self.claimed)  # the released claims, also where nothing was recorded
        self.local.close()
        if names:
            self._push(names, f"reconciler: apply {', '.join(sorted(names))}")

    # -- pushing ------------------------------------------------------------------------------

    def _push(self, accounts: Collection[str], message: str, *, claiming: bool = False) -> None:
        """Commit the working folder's files of ``accounts`` on the branch tip and push.

        Rejected because the branch moved: when the other run changed none of ``accounts``
        (nor any account this run claimed), rebase on its commit and push again; otherwise
        :class:`LedgerLocked` (``locked``): another run got there first.
        """
        ours = set(accounts)
        for _ in range(PUSH_ATTEMPTS):
            commit = self._commit(ours, message)
            if commit is None or self._publish(commit):
                if commit is not None:
                    self.base = commit
                return
            tip = self.store.fetch()
            changed = self._changed_accounts(self.base, tip)
            clash = changed & (ours | self.claimed)
            if clash:
                raise LedgerLocked(
                    f"{self.store.description}: another reconciler run wrote "
                    f"{', '.join(sorted(clash))} at the same time"
                    + (
                        "; this run sent nothing for them"
                        if claiming
                        else "; this run's records are kept in " + str(self.folder.path)
                    )
                )
            self.base = tip
        raise LedgerError(
            f"{self.store.description}: could not push after {PUSH_ATTEMPTS} attempts, other "
            f"runs kept pushing first; the records are kept in {self.folder.path}"
        )

    def _changed_accounts(self, old: str | None, new: str | None) -> set[str]:
        if new is None or old == new:
            return set()
        if old is None:
            names = self.store.git.out("ls-tree", "--name-only", new).splitlines()
        else:
            names = self.store.git.out("diff", "--name-only", old, new).splitlines()
        return {name[: -len(".json")] for name in names if name.endswith(".json")}

    def _commit(self, accounts: set[str], message: str) -> str | None:
        """A commit of the branch tip with ``accounts``' files from the working folder."""
        git = self.store.git
        with tempfile.TemporaryDirectory() as temp:
            env = {"GIT_INDEX_FILE": str(Path(temp) / "index")}
            if self.base is None:
                git.out("read-tree", "--empty", env=env)
            else:
                git.out("read-tree", self.base, env=env)
            lines = []
            for account in sorted(accounts):
                path = self.folder.path / f"{account}.json"
                if path.exists():
                    blob = git.out("hash-object", "-w", "--stdin", stdin=path.read_text("utf-8"))
                    lines.append(f"100644 {blob}\t{account}.json")
                else:
                    lines.append(f"0 {'0' * 40}\t{account}.json")
            git.out("update-index", "--index-info", stdin="\n".join(lines) + "\n", env=env)
            tree = git.out("write-tree", env=env)
        if self.base is not None and git.out("rev-parse", f"{self.base}^{{tree}}") == tree:
            return None  # nothing changed
        parents = ["-p", self.base] if self.base is not None else []
        return git.out(*_identity(git), "commit-tree", tree, *parents, "-m", message)

    def _publish(self, commit: str) -> bool:
        """Move the branch to ``commit`` if nobody moved it since ``base``; False if they did."""
        git = self.store.git
        if not self.store._has_remote():
            old = self.base or ""
            done = git.run("update-ref", f"refs/heads/{self.store.branch}", commit, old)
            return done.returncode == 0
        done = git.run(
            "push", "--quiet", "--porcelain", REMOTE, f"{commit}:refs/heads/{self.store.branch}"
        )
        if done.returncode == 0:
            git.run("update-ref", self.store._remote_ref, commit)
            return True
        report = done.stdout + done.stderr
        raced = (
            "[rejected]",
            "non-fast-forward",
            "fetch first",
            "cannot lock ref",
            "failed to update ref",
        )
        if any(sign in report for sign in raced):
            return False  # another run pushed first
        raise GitError(
            f"cannot push the ledger to {self.store.description}: {_last_line(done.stderr)}"
        )


def _identity(git: Git) -> list[str]:
    """``-c user.name=… -c user.email=…`` when the repository has no identity configured."""
    if git.run("config", "user.email").stdout.strip():
        return []
    name, email = _IDENTITY
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def _is_live(claim: Claim) -> bool:
    """Whether another run's claim still holds: not expired, and not a dead local process."""
    try:
        expires = parse_stamp(claim.expires)
    except ValueError:
        return False
    if datetime.now(UTC) >= expires:
        return False
    if claim.host == socket.gethostname():
        try:
            os.kill(claim.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _claimed_message(account: str, claim: Claim, where: str) -> str:
    return (
        f"{where}: account {account} is held by another reconciler run (run {claim.run}, pid "
        f"{claim.pid} on host {claim.host}, since {claim.at}); it is released when that run "
        f"ends, or taken over after {claim.expires} if that run died"
    )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
