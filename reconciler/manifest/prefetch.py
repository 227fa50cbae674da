"""Manifests parsed in a second process while the command line's modules import (issue 11).

``apply`` spends its first quarter of a second importing its modules, then (10k models) a
tenth of a second parsing the manifests' YAML: both on one core, while another one idles (the
run's clock is the target there: issue 11). So as the command line starts
(:mod:`reconciler.startup`), :func:`start` forks a child that finds the manifests the
arguments name (or the default folder) with
:mod:`reconciler.manifest.files`, which refuses what the loader refuses, parses each one the
fast way (:func:`~reconciler.manifest.plainyaml.read_plain`) and sends the documents back
through a pipe. The child imports YAML and nothing else of the package's weight, so it is done
before the parent needs it.

The loader trusts none of it blindly: it still reads and checks every file itself, and takes
the child's parse (:func:`parsed`) only for a text it read that is the very text the child
parsed (the same SHA-256), once; any other text it parses itself. A wrong guess at the
arguments (an option's value taken for a path) costs the child's time and nothing else. The
child writes only to its pipe, stops at its first error, and ends with the parent's Ctrl-C.

It runs only where it pays: where there is a fork (Linux), two CPUs or more for this process,
and ``apply``. Not for ``plan``, ``validate`` or ``status``: their target is the CPU they take
(issue 11), and the child adds some (reading the files twice, the pickle both ways) for the
wall time it saves. ``RECONCILER_PREFETCH=0`` turns it off.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import logging
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from reconciler.manifest import plainyaml
from reconciler.manifest.files import DEFAULT_MANIFEST_PATHS, manifest_files, read_manifest_text

log = logging.getLogger("reconciler.manifest")

#: The commands whose manifests are parsed ahead (see the module).
COMMANDS = frozenset({"apply"})
#: The longest the loader waits for the child's parses before it parses everything itself.
RECEIVE_SECONDS = 10.0


@dataclass(frozen=True)
class Parse:
    """The child's reading of one text: its documents, or None when it is not plain YAML."""

    documents: list[plainyaml.PlainDocument] | None


@dataclass
class _Child:
    """A child at work: its process id and the pipe its parses come through."""

    pid: int
    pipe: int


#: The child while it works; then its parses, by the SHA-256 of their text.
_child: _Child | None = None
_parses: dict[bytes, Parse] | None = None


def start_if_command_line() -> None:
    """Start the child when this process is the ``reconciler`` command line (not a test or a
    program importing the package) and it pays (see the module)."""
    program = Path(sys.argv[0])
    this_command = program.name == "reconciler" or (
        program.name == "__main__.py" and program.parent.name == "reconciler"
    )
    if not this_command or os.environ.get("RECONCILER_PREFETCH") == "0":
        return
    paths = named_paths(sys.argv[1:])
    linux = hasattr(os, "fork") and hasattr(os, "sched_getaffinity")
    if paths is not None and linux and len(os.sched_getaffinity(0)) > 1:
        start(paths)


def named_paths(args: Sequence[str]) -> tuple[str, ...] | None:
    """The manifest paths of an ``apply`` command line, as far as a guess can tell without its
    parser: the existing paths after the command but a saved plan (``*.json``, as
    :func:`reconciler.planfile.split_plan_file` tells them apart), or the default folder.
    None for any other command."""
    command = next((i for i, arg in enumerate(args) if arg in COMMANDS), None)
    if command is None:
        return None
    named = [
        arg
        for arg in args[command + 1 :]
        if not arg.startswith("-") and not arg.endswith(".json") and Path(arg).exists()
    ]
    return tuple(named) or DEFAULT_MANIFEST_PATHS


def parse_ahead(paths: Sequence[str]) -> dict[bytes, Parse]:
    """The child's work: each manifest under ``paths`` that the loader would read, parsed."""
    parses: dict[bytes, Parse] = {}
    for path in manifest_files(paths, []):
        text = read_manifest_text(path, str(path), [])
        if text is not None:
            documents = plainyaml.read_plain(text, plainyaml.SAFE_LOADER, plainyaml.SECRET_KEY)
            parses[_digest(text)] = Parse(documents)
    return parses


def start(paths: Sequence[str]) -> None:
    """Fork the child that parses the manifests under ``paths`` (see the module)."""
    global _child
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(read_end)
        _work(paths, write_end)
    os.close(write_end)
    _child = _Child(pid, read_end)
    atexit.register(_abandon)


def _work(paths: Sequence[str], pipe: int) -> NoReturn:  # pragma: no cover - in the child
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it with the parent, quietly
        quiet = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):  # nothing of the child's ever shows
            os.dup2(quiet, stream)
        gc.disable()  # a short life, and nothing it makes is cyclic
        data = pickle.dumps(parse_ahead(paths), protocol=pickle.HIGHEST_PROTOCOL)
        with open(pipe, "wb") as out:
            out.write(data)
    except BaseException:
        os._exit(1)
    os._exit(0)


def parsed(text: str) -> Parse | None:
    """The child's parse of ``text``, if it made one of this very text (each is used once),
    else None: the caller parses it itself."""
    global _parses
    if _parses is None:
        if _child is None:
            return None
        _parses = _receive(_child)
    return _parses.pop(_digest(text), None)


def _receive(child: _Child) -> dict[bytes, Parse]:
    """Everything the child sends, once it is done; nothing if it failed or took too long."""
    global _child
    _child = None
    chunks: list[bytes] = []
    deadline = time.monotonic() + RECEIVE_SECONDS
    try:
        while select.select([child.pipe], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(child.pipe, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(child.pid, signal.SIGKILL)
            log.debug("the manifests' parse ahead took too long: parsed here")
    finally:
        os.close(child.pipe)
        _, status = os.waitpid(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        log.debug("the manifests' parse ahead failed: parsed here")
        return {}
    parses: dict[bytes, Parse] = pickle.loads(b"".join(chunks))  # our own child's
    log.debug("manifests parsed ahead in a second process: %d files", len(parses))
    return parses


def _abandon() -> None:
    """At the exit: a child whose parses were never asked for is stopped and reaped."""
    global _child
    child, _child = _child, None
    if child is not None:
        os.close(child.pipe)
        os.kill(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
