"""Process start-up of the command line: what gets imported, and how often the GC runs.

Imported by :mod:`reconciler.cli` before anything that imports httpx or aiohttp. Each of these
was measured on ``plan`` or ``apply`` of 10k models (see benchmarks/README.md):

- ``apply``'s manifests are parsed in a second process while the rest imports
  (:func:`reconciler.manifest.prefetch.start_if_command_line`): 0.1 s of YAML taken off the
  start, on a core that idles meanwhile.
- httpx imports its own command line (click, rich and pygments) whenever they are installed,
  about 60 ms at every start. Marking ``httpx._main`` as absent makes httpx fall back to the stub
  it has for when those are missing; the reconciler never uses httpx's command line.
- aiohttp makes two default TLS contexts when it is imported, each loading the system's CA
  bundle: 40 ms at every start, for contexts the reconciler never uses (its wire passes its
  own, httpx's, to every request that needs TLS, made on the first: see
  :mod:`reconciler.api.transport`). aiohttp is imported here with that loading skipped
  (:func:`_no_default_ca_bundle`), so its defaults trust no certificate at all: were one
  ever used, TLS would fail, never pass unchecked.
- The collector: the imports of the command line make about 85k containers, and CPython's
  default thresholds scan them over and over meanwhile (a hundred young collections, ten
  middle and a full one: 40 ms). Nearly all of them live as long as the process, so no
  collection runs until the imports are done (:data:`IMPORT_THRESHOLD`); the module that
  imports this one then calls :func:`imports_done`, which freezes what they made out of the
  collector for good and gives the thresholds back (a process that imports the command line
  without running it, a test, keeps its thresholds). The few cycles the imports leave
  (about 1,400 objects, 0.5 MB) are frozen with the rest: collecting them first would cost
  the 40 ms again. Parsing manifests and listings allocates hundreds of
  thousands of small containers, none of them cyclic, and the default thresholds cost about
  two thirds of the YAML parse time there: :func:`tune_gc`, when a command runs, raises the
  first threshold.
- The end: as the interpreter exits it runs one last collection over every object not frozen.
  After apply of 10k models that is the 100k objects the run left in cycles (the tracebacks
  of its tasks hold their frames, and through them the plan and the report): 0.1 s after the
  last request (issue 11), to free what the exit frees anyway. :func:`before_exit` freezes
  them when the command is done.
"""

from __future__ import annotations

import contextlib
import gc
import ssl
import sys
from collections.abc import Iterator

from reconciler.manifest import prefetch

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

#: Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD = 50_000
#: The same while the command line's modules are imported: more than they allocate.
IMPORT_THRESHOLD = 1_000_000
_BEFORE_IMPORTS = gc.get_threshold()
gc.set_threshold(IMPORT_THRESHOLD, *_BEFORE_IMPORTS[1:])


def imports_done() -> None:
    """What the imports made frozen out of the collector (a collection of it all would follow
    at once otherwise), and its thresholds as they were before them (see the module)."""
    gc.freeze()
    gc.set_threshold(*_BEFORE_IMPORTS)


@contextlib.contextmanager
def _no_default_ca_bundle() -> Iterator[None]:
    """TLS contexts made meanwhile load no default CA bundle (see the module)."""
    name = "set_default_verify_paths"
    own = vars(ssl.SSLContext).get(name)  # None: inherited from the C class, as it is today
    setattr(ssl.SSLContext, name, lambda self: None)
    try:
        yield
    finally:
        if own is None:
            delattr(ssl.SSLContext, name)
        else:
            setattr(ssl.SSLContext, name, own)


prefetch.start_if_command_line()  # first: the manifests parse while the rest imports

if "aiohttp" not in sys.modules:
    with _no_default_ca_bundle():
        import aiohttp  # noqa: F401  (imported for the side effect of its module-level contexts)


def before_exit() -> None:
    """The command is done and the process ends: the interpreter's last collection need not
    walk what the run made (see the module)."""
    gc.freeze()


def tune_gc() -> None:
    """Collect rarely from now on (cycles are still collected); what was made since
    :func:`imports_done` is frozen too, as a command starts."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, middle, old)
