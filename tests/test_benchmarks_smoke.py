"""The fleet benchmark runs end to end at a tiny size, so that it cannot rot.

No timing is asserted: only that every tool converged on the same work, that the emulator's
records were read (loads in flight within the queue limit) and that the results are data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_fleet_runner_runs_every_tool_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks", "fleet", "--accounts", "2", "--models", "3"),
            *("--changes", "3", "--time-scale", "600", "--tool-timeout", "60", "--json", str(out)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    runs = {row["tool"]: row for row in data["fleet"]}
    assert set(runs) == {"apply", "sequential", "threads", "oracle"}
    for row in runs.values():
        assert row["converged"], row
        assert row["ready"] == 3
        assert not row["queue_limit_exceeded"]
        assert row["requests"] >= 3
    assert data["ratios"][0]["bound_s"] > 0
    assert data["ratios"][0]["oracle_phase_over_bound"] > 0
    assert "lower bound" in result.stdout
