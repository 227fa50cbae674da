"""The emulator's configuration, its CLI wiring, and the assumptions table kept in step."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

import reconciler.emulator
from reconciler.cli import run
from reconciler.emulator import AccountConfig, build_config, load_accounts
from reconciler.emulator.assumptions import ASSUMPTIONS
from reconciler.errors import ConfigError


def test_every_assumption_is_listed_in_the_package_docstring() -> None:
    doc = reconciler.emulator.__doc__ or ""
    listed = re.findall(r"^- ([a-z-]+):", doc, flags=re.MULTILINE)
    assert listed == list(ASSUMPTIONS)


def test_accounts_yaml(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(
        "- {name: a, key: ka, api: community}\n"
        "- {name: b, key: kb, api: enterprise, queue_limit: 10}\n",
        encoding="utf-8",
    )
    assert load_accounts(path) == [
        AccountConfig(name="a", key="ka", api="community"),
        AccountConfig(name="b", key="kb", api="enterprise", queue_limit=10),
    ]
    config = build_config(config_file=str(path), error_mode="modern", time_scale=60, seed=3)
    assert (config.error_mode, config.time_scale, config.seed) == ("modern", 60, 3)
    assert len(config.accounts) == 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- {name: a, api: community}\n", "0.key: Field required"),
        ("- {name: a, key: k, api: free}\n", "0.api"),
        ("- {name: a, key: k, api: community, extra: 1}\n", "0.extra"),
        ("{name: a}\n", "Input should be a valid list"),
        ("- [unclosed\n", "cannot read emulator config"),
    ],
)
def test_bad_accounts_yaml(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_accounts(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_accounts(empty) == []
    with pytest.raises(ConfigError, match="cannot read"):
        load_accounts(tmp_path / "missing.yaml")


def test_bad_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="greater than 0"):
        build_config(time_scale=0)


def test_cli_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text("- {name: x, api: community}\n", encoding="utf-8")
    assert run(["emulator", "--config", str(path)]) == 1
    assert "0.key: Field required" in capsys.readouterr().err


def test_cli_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run(["emulator", "--port", str(port)]) == 1
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
