"""Manifests parsed in a second process while the command line's modules import (issue 11).

``apply`` spends its first quarter of a second importing its modules, then (10k models) a
tenth of a second parsing the manifests' YAML: both on one core, while another one idles (the
run's clock is the target there: issue 11). So as the command line starts
(:mod:`reconciler.startup`), :func:`start` forks a child that finds the manifests the
arguments name (or the default folder) with :mod:`reconciler.manifest.files`, which refuses
what the loader refuses, parses each one the fast way
(:func:`~reconciler.manifest.plainyaml.read_plain`) and sends it back through a pipe, one
frame per file, in the order the loader reads them (all parsed before the first is written: a
full pipe must not hold the parsing up). The child imports YAML and nothing else of the
package's weight, so at that size it is done before the parent needs it.

The loader trusts none of it blindly: it still reads and checks every file itself, and takes
the child's parse (:func:`parsed`) only of a text it read that is the very text the child
parsed (the same SHA-256), once; any other text it parses itself. (The same text gives the
same parse: the same code and YAML tables, which nothing changes at run time.) It never waits
for the child: a parse that has not arrived when the loader reaches its file is parsed by the
loader, so a slow child (a huge manifest, a busy machine) costs nothing but its own CPU. When the
loader is done (:func:`finish`), or the process exits, the child is stopped and reaped. A
wrong guess at the arguments costs the child's work and nothing else. The child writes only
to its pipe, stops at its first error, and leaves a Ctrl-C to the parent.

It runs only where it pays: ``apply``, a fork (Linux), two CPUs or more for this process
(affinity and the cgroup's quota), manifests of at most :data:`MAX_AHEAD_BYTES` (a bound on
the child's memory too), and a child that can be reaped (not when SIGCHLD is ignored, as
some supervisors start programs). Not for ``plan``, ``validate`` or ``status``: their target
is the CPU they take (issue 11), and the child adds some (the files read twice, the pickles)
for the wall time it saves. ``RECONCILER_PREFETCH=0`` turns it off.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import hashlib
import io
import logging
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from reconciler.manifest import plainyaml
from reconciler.manifest.files import DEFAULT_MANIFEST_PATHS, manifest_files, read_manifest_text

log = logging.getLogger("reconciler.manifest")

#: Options of the command line that take a value, before the command and after ``apply``
#: (their values are not manifest paths; a test keeps these lists the CLI's).
GLOBAL_VALUE_OPTIONS = frozenset(
    {
        "--allow-api-base",
        "--api-base",
        "--key-env-pattern",
        "--max-concurrency",
        "--request-timeout",
        "--spam-window",
        "--unreachable-timeout",
    }
)
APPLY_VALUE_OPTIONS = frozenset(
    {
        "--account",
        "--ledger",
        "--load-grace",
        "--max-deletes",
        "--output",
        "--poll-interval",
        "--shard",
        "--timeout",
        "-o",
    }
)
#: Manifests larger than this in all are parsed by the loader alone: the child would hold
#: their parse in memory beside the parent (a pod's limit), for a gain that shrinks with size.
MAX_AHEAD_BYTES = 8 * 1024 * 1024
#: The longest a child that was killed is waited for (it is left to the system after that).
REAP_SECONDS = 0.5
_LENGTH = 8  # bytes of a frame's length


@dataclass(frozen=True)
class Parse:
    """The child's reading of one text: its documents, or None when it is not plain YAML."""

    documents: list[plainyaml.PlainDocument] | None


@dataclass
class _Child:
    """A child at work: its process id, its pipe, and what came through it so far."""

    pid: int
    pipe: int
    pidfd: int | None = None
    received: bytearray = field(default_factory=bytearray)


#: The child while it works.
_child: _Child | None = None
#: The parses that came from the child and were not taken yet, by the SHA-256 of their text.
_parses: dict[bytes, Parse] = {}
#: How many of them the loader took (for the debug line at :func:`finish`).
_taken = 0


def start_if_command_line() -> None:
    """Start the child when this process is the ``reconciler`` command line (not a test or a
    program importing the package) running ``apply``, and it pays (see the module)."""
    program = Path(sys.argv[0])
    this_command = program.name == "reconciler" or (
        program.name == "__main__.py" and program.parent.name == "reconciler"
    )
    if not this_command or os.environ.get("RECONCILER_PREFETCH") == "0":
        return
    paths = named_paths(sys.argv[1:])
    if paths is not None and _can_fork() and _cpus() >= 2:
        start(paths)


def named_paths(args: Sequence[str]) -> tuple[str, ...] | None:
    """The manifest paths of an ``apply`` command line, read as its parser would (the values
    of options skipped), but a saved plan (``*.json``, as
    :func:`reconciler.planfile.split_plan_file` tells them apart); the default folder when
    none is named. None for any other command."""
    rest = iter(args)
    for arg in rest:
        if arg in GLOBAL_VALUE_OPTIONS:
            next(rest, None)
        elif not arg.startswith("-"):
            if arg != "apply":
                return None
            break
    else:
        return None
    paths: list[str] = []
    for arg in rest:
        if arg == "--":
            paths.extend(rest)
        elif arg in APPLY_VALUE_OPTIONS:
            next(rest, None)
        elif not arg.startswith("-"):
            paths.append(arg)
    named = tuple(path for path in paths if not path.endswith(".json"))
    return named or DEFAULT_MANIFEST_PATHS


def _can_fork() -> bool:
    """A fork that can be reaped: Linux's (with affinity), SIGCHLD not ignored."""
    linux = hasattr(os, "fork") and hasattr(os, "sched_getaffinity")
    return linux and signal.getsignal(signal.SIGCHLD) != signal.SIG_IGN


def _cpus() -> float:
    """The CPUs this process may use: its affinity, under the cgroup's quota if it has one."""
    cpus = float(len(os.sched_getaffinity(0)))
    for quota_file, period_file in (
        ("/sys/fs/cgroup/cpu.max", None),  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ):
        with contextlib.suppress(OSError, ValueError, IndexError, ArithmeticError):
            quota_text = Path(quota_file).read_text(encoding="ascii").split()
            period = (
                Path(period_file).read_text(encoding="ascii")
                if period_file is not None
                else quota_text[1]
            )
            if quota_text[0] not in ("max", "-1"):
                cpus = min(cpus, int(quota_text[0]) / int(period))
    return cpus


def parse_each(paths: Sequence[str]) -> Iterator[tuple[bytes, Parse]]:
    """The child's work: each manifest under ``paths`` the loader would read, in its order,
    parsed (nothing when they are larger than :data:`MAX_AHEAD_BYTES` in all)."""
    files = list(manifest_files(paths, []))
    size = 0
    for path in files:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
    if size > MAX_AHEAD_BYTES:
        return
    for path in files:
        text = read_manifest_text(path, str(path), [])
        if text is not None:
            documents = plainyaml.read_plain(text, plainyaml.SAFE_LOADER, plainyaml.SECRET_KEY)
            yield _digest(text), Parse(documents)


def start(paths: Sequence[str]) -> None:
    """Fork the child that parses the manifests under ``paths`` (see the module); a fork that
    fails (a limit on processes or files) only means no child."""
    global _child
    if _child is not None:
        return
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return
    # No Ctrl-C from the fork until the child is known (and stopped at the exit): neither a
    # child that runs the parent's code nor one that nobody stops.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            log.debug("no parse ahead of the manifests: %s", exc)
            return
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            try:
                os.close(read_end)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it, and reaps it
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                _work(paths, write_end)
            finally:
                os._exit(1)  # never the parent's code, whatever happened
        os.close(write_end)
        _child = _Child(pid, read_end, _pidfd(pid))
        atexit.register(finish)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _pidfd(pid: int) -> int | None:
    """A handle on the child itself (Linux 5.3 and later), so that no signal and no wait can
    ever reach another process that took its pid after it was reaped."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _work(paths: Sequence[str], pipe: int) -> NoReturn:  # pragma: no cover - in the child
    try:
        quiet = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):  # nothing of the child's ever shows
            os.dup2(quiet, stream)
        gc.disable()  # a short life, and nothing it makes is cyclic
        frames = bytearray()  # all of them first: a full pipe must not hold the parsing up
        for digest, parse in parse_each(paths):
            frame = pickle.dumps((digest, parse), protocol=pickle.HIGHEST_PROTOCOL)
            frames += len(frame).to_bytes(_LENGTH, "big") + frame
        import fcntl  # here: the module is imported where there is no fcntl (Windows) too

        with contextlib.suppress(OSError):  # a larger pipe: fewer turns to drain it
            fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, 1 << 20)
        with open(pipe, "wb") as out:
            out.write(frames)
    except BaseException:
        os._exit(1)
    os._exit(0)


def parsed(text: str) -> Parse | None:
    """The child's parse of ``text`` if it has arrived and is of this very text (each is taken
    once), else None: the caller parses the text itself. Never waits for the child."""
    global _taken
    if _child is None and not _parses:
        return None  # nothing parsed ahead (plan, validate): no hash to take
    if _child is not None:
        _receive(_child)
    parse = _parses.pop(_digest(text), None)
    _taken += parse is not None
    return parse


def _receive(child: _Child) -> None:
    """Take in the frames that have arrived, without waiting; at the pipe's end, reap."""
    ended = False
    while select.select([child.pipe], [], [], 0)[0]:
        chunk = os.read(child.pipe, 1 << 20)
        if not chunk:
            ended = True
            break
        child.received += chunk
    received = child.received
    while len(received) >= _LENGTH:
        end = _LENGTH + int.from_bytes(received[:_LENGTH], "big")
        if len(received) < end:
            break  # the rest of the frame is on its way
        try:
            digest, parse = _Frames(io.BytesIO(received[_LENGTH:end])).load()
        except Exception:  # never from our child; a miss, then, like any other
            ended = True
            break
        _parses[digest] = parse
        del received[:end]
    if ended:
        _stop()


def finish() -> None:
    """The loader is done (or the process ends): the child is stopped if it still works, and
    reaped; the parses not taken are dropped."""
    global _taken
    if _child is None and not _taken and not _parses:
        return
    _stop()
    log.debug("manifests parsed ahead in a second process: %d taken, %d not", _taken, len(_parses))
    _parses.clear()
    _taken = 0


def _stop() -> None:
    """Stop the child if it still works, and reap it, without waiting long: a child stuck in
    the kernel (a hung network file system) is left for the system to reap."""
    global _child
    child, _child = _child, None
    if child is None:
        return
    os.close(child.pipe)
    try:
        if not _reaped(child):
            _kill(child)
            deadline = time.monotonic() + REAP_SECONDS
            while not _reaped(child) and time.monotonic() < deadline:
                time.sleep(0.001)
    finally:
        if child.pidfd is not None:
            os.close(child.pidfd)


def _reaped(child: _Child) -> bool:
    """Reap the child if it has ended; True when it is gone (reaped here or elsewhere)."""
    try:
        if child.pidfd is not None:
            return os.waitid(os.P_PIDFD, child.pidfd, os.WEXITED | os.WNOHANG) is not None
        return os.waitpid(child.pid, os.WNOHANG) != (0, 0)
    except ChildProcessError:  # reaped elsewhere: its pid may be another process's now
        return True


def _kill(child: _Child) -> None:
    with contextlib.suppress(OSError):
        if child.pidfd is not None:
            signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
        else:
            os.kill(child.pid, signal.SIGKILL)


class _Frames(pickle.Unpickler):
    """Our own child's frames hold nothing but these (the values of plain YAML scalars)."""

    ALLOWED = frozenset(
        {
            (__name__, "Parse"),
            (plainyaml.__name__, "PlainDocument"),
            ("datetime", "date"),
            ("datetime", "datetime"),
            ("datetime", "timedelta"),
            ("datetime", "timezone"),
        }
    )

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"not in a parse: {module}.{name}")
        found: type = super().find_class(module, name)
        return found


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
