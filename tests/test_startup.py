"""The command line's start-up (reconciler.startup), in a fresh interpreter each time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, json, ssl
    default = gc.get_threshold()[0]
    runs = []
    gc.callbacks.append(lambda phase, info: phase == "start" and runs.append(info["generation"]))
    import reconciler.startup
    runs.clear()  # what ran before the start-up module is not its business
    import reconciler.cli
    during = list(runs)
    threshold_after_imports = gc.get_threshold()[0]  # as it was: a test imports the CLI too
    reconciler.startup.tune_gc()
    print(json.dumps({
        "collections_during_imports": during,
        "threshold_after_imports": threshold_after_imports,
        "default": default,
        "threshold_after_tune": gc.get_threshold()[0],
        "frozen": gc.get_freeze_count(),
        "ssl_patched_left": "set_default_verify_paths" in vars(ssl.SSLContext),
    }))
    """
)


def test_no_collection_runs_while_the_command_line_is_imported_then_it_is_tuned() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    # CPython's defaults ran about 120 collections (one full) over these imports: 40 ms.
    assert seen["collections_during_imports"] == []
    assert seen["threshold_after_imports"] == seen["default"]  # given back
    assert seen["threshold_after_tune"] == 50_000
    assert seen["frozen"] > 50_000  # what the imports made is out of the collector's way
    assert seen["ssl_patched_left"] is False  # the CA-bundle skip ended with aiohttp's import


ENDING = textwrap.dedent(
    """
    import gc, json
    import reconciler.cli

    def a_run(args):  # leaves what a run of apply leaves: cycles, garbage only at the exit
        for _ in range(20_000):
            cycle = []
            cycle.append(cycle)
        return 0

    reconciler.cli.run = a_run
    try:
        reconciler.cli.main([])
    except SystemExit as done:
        code = done.code
    print(json.dumps({"code": code, "left_to_collect": len(gc.get_objects())}))
    """
)


def test_what_a_command_leaves_is_frozen_before_the_exit() -> None:
    # The interpreter's last collection walks every object not frozen: after apply of 10k
    # models, 100k objects in cycles (tracebacks of the run's tasks hold their frames), 0.1 s.
    child = [sys.executable, "-c", ENDING]
    seen = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout)
    assert seen["code"] == 0
    assert seen["left_to_collect"] < 1_000
