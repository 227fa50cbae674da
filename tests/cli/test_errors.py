"""The CLI's one error boundary: every kind of failure maps to its documented exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.api.secret import ApiKey
from reconciler.cli import main, run
from reconciler.errors import (
    ApiError,
    ApplyDeclined,
    ConfigError,
    PlanBlocked,
    ReconcilerError,
    StalePlanError,
)


def _raising(exc: BaseException) -> object:
    def load_manifests(paths: Sequence[str], policy: object = None) -> object:
        raise exc

    return load_manifests


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (ConfigError("MODELSLAB_KEY_STUDIO is not set"), "error: MODELSLAB_KEY_STUDIO is not set"),
        (
            ApiError("Invalid Api Key", account="studio-prod", endpoint="v3/load_model"),
            "error: studio-prod v3/load_model: Invalid Api Key",
        ),
        (ReconcilerError("something expected went wrong"), "error: something expected went wrong"),
    ],
    ids=["config", "api", "base"],
)
def test_an_expected_error_exits_1_with_one_line(
    exc: ReconcilerError,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "load_manifests", _raising(exc))

    assert run(["validate"]) == 1

    out, err = capsys.readouterr()
    assert err.splitlines() == [line]
    assert out == ""


def test_a_bug_exits_3_with_a_hint_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_manifests", _raising(ZeroDivisionError("division by zero")))

    assert run(["validate"]) == 3

    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: division by zero" in err
    assert "bug" in err
    assert "report" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 2


def test_a_bug_leaves_a_crash_log_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    canary = ApiKey("sk-canary-0123456789abcdef")  # a key this process holds
    url = "http://user:hunter2@127.0.0.1/api/"
    monkeypatch.setattr(
        cli, "load_manifests", _raising(RuntimeError(f"{canary.reveal()} at {url}"))
    )

    assert run(["validate"]) == 3

    err = capsys.readouterr().err
    log = tmp_path / "reconciler" / "crash.log"
    assert f"please report it with the crash log {log}" in err
    text = log.read_text(encoding="utf-8")
    assert "reconciler validate" in text and "Traceback (most recent call last)" in text
    assert "RuntimeError" in text
    assert canary.reveal() not in text and canary.reveal() not in err
    assert "hunter2" not in text and "hunter2" not in err
    assert log.stat().st_mode & 0o777 == 0o600


def test_a_bug_with_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_manifests", _raising(KeyError("boom")))

    assert run(["--debug", "validate"]) == 3

    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "KeyError: 'boom'" in err
    assert "bug" in err


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_manifests", _raising(KeyboardInterrupt()))

    assert run(["validate"]) == 130

    err = capsys.readouterr().err
    assert "Interrupted" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--no-such-option"],
        ["no-such-command"],
        ["validate", "-o", "yaml"],
        ["schema", "--write", "--check", "extra-argument"],
    ],
    ids=["unknown-option", "unknown-command", "bad-choice", "extra-argument"],
)
def test_usage_errors_exit_1_not_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args) == 1  # 2 is reserved for plan --detailed-exitcode

    err = capsys.readouterr().err
    assert "Error:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [["--help"], ["validate", "--help"], ["--version"]])
def test_help_and_version_exit_0(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args) == 0

    assert capsys.readouterr().out


def test_main_exits_with_the_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_manifests", _raising(ConfigError("nope")))

    with pytest.raises(SystemExit) as exited:
        main(["validate"])

    assert exited.value.code == 1
    assert capsys.readouterr().err == "error: nope\n"


def test_python_dash_m_runs_the_same_boundary(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 1
    assert "missing.yaml:1:1: no such file or folder" in done.stderr
    assert "Traceback" not in done.stderr


# -- apply's refusals go through the same boundary --------------------------------------------


def _apply_raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """``apply`` with no manifests to read and an engine that raises ``exc``."""

    def build_run(*_args: object, **_kwargs: object) -> tuple[object, None]:
        return object(), None

    def apply_with_ledger(*_args: object, **_kwargs: object) -> object:
        raise exc

    monkeypatch.setattr(cli, "build_run", build_run)
    monkeypatch.setattr(cli, "apply_with_ledger", apply_with_ledger)


def test_a_refusal_of_apply_is_shown_as_the_refused_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _apply_raising(monkeypatch, StalePlanError("the live state of studio-prod changed"))

    assert run(["apply", "-o", "json", "--auto-approve"]) == 1

    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["refused"] == "the live state of studio-prod changed"
    assert (document["ok"], document["failure_reason"]) == (False, "plan-changed")
    assert "error:" not in err


def test_an_error_apply_did_not_declare_a_refusal_is_an_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _apply_raising(monkeypatch, ApplyDeclined("apply cancelled"))

    assert run(["apply", "-o", "json", "--auto-approve"]) == 1

    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: apply cancelled\n")


def test_a_refusal_outside_the_engine_is_an_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_manifests", _raising(ConfigError("unknown account x")))

    assert run(["apply", "-o", "json", "--auto-approve"]) == 1

    out, err = capsys.readouterr()
    assert (out, err) == ("", "error: unknown account x\n")


def test_a_bug_while_showing_a_refusal_is_still_caught(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _apply_raising(monkeypatch, PlanBlocked("apply refused before sending anything: guard"))

    def refused_report(exc: ReconcilerError) -> object:
        raise RuntimeError("the report could not be made")

    monkeypatch.setattr(cli, "refused_report", refused_report)

    assert run(["apply", "-o", "json", "--auto-approve"]) == 3

    err = capsys.readouterr().err
    assert "internal error: RuntimeError: the report could not be made" in err
    assert (tmp_path / "reconciler" / "crash.log").is_file()
