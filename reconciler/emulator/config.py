"""How an emulator is configured: its accounts, timings, error transport and fault seed.

One :class:`EmulatorConfig` describes an emulator at start-up; the running emulator keeps a copy
of it as its mutable *settings* (``POST /_emulator/settings`` changes that copy) and goes back
to the original on ``POST /_emulator/reset``. The same :class:`AccountConfig` shape is the body
of ``POST /_emulator/accounts`` and an item of the ``--config`` YAML file, so a file and a
script describe accounts the same way (design.md §5).

This module only describes and loads configuration; it starts nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from reconciler.api.kinds import ApiKind
from reconciler.errors import ConfigError

ErrorMode = Literal["legacy", "modern"]

#: Seven days: the docs' idle time after which a model leaves the inference server (§2.4).
SEVEN_DAYS = 7 * 86400.0


class AccountConfig(BaseModel):
    """An account the emulator knows: the key that authenticates it and which API it speaks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Name shown in /_emulator/state.")
    key: str = Field(min_length=1, description="The API key requests carry in their body.")
    api: ApiKind = Field(description="community (v3/v4 endpoints) or enterprise (v1/enterprise).")
    queue_limit: int = Field(default=5, ge=1, description="Loads/reloads in flight at once.")


class EmulatorConfig(BaseModel):
    """Everything an emulator needs to start; the timings are in emulated seconds."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    accounts: list[AccountConfig] = Field(default_factory=list)
    error_mode: ErrorMode = "legacy"
    time_scale: float = Field(default=1.0, gt=0, description="Emulated seconds per real second.")
    load_seconds: float = Field(default=60.0, ge=0)
    reload_seconds: float = Field(default=120.0, ge=0)
    spam_window_seconds: float = Field(default=30.0, ge=0)
    idle_evict_seconds: float = Field(default=SEVEN_DAYS, gt=0)
    state_file: Path | None = None
    seed: int | None = Field(default=None, description="Seed of the fault generator.")
    start_time: float | None = Field(
        default=None, description="Emulated epoch seconds at start; default: the wall clock."
    )
    hang_seconds: float = Field(
        default=60.0, gt=0, description="Real seconds a hung request is held at most."
    )
    tick_seconds: float = Field(
        default=0.1, gt=0, description="Real seconds between background transition checks."
    )


def load_accounts(path: Path) -> list[AccountConfig]:
    """Read a YAML list of account objects (the body of ``POST /_emulator/accounts``).

    Raises:
        ConfigError: the file cannot be read, is not YAML, or an item is not a valid account.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read emulator config: {exc}") from exc
    if data is None:
        return []
    try:
        return TypeAdapter(list[AccountConfig]).validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: invalid emulator config: {problems}") from exc


def build_config(
    *,
    config_file: str | Path | None = None,
    error_mode: str = "legacy",
    time_scale: float = 1.0,
    state_file: str | Path | None = None,
    seed: int | None = None,
) -> EmulatorConfig:
    """The config the ``reconciler emulator`` command's flags describe.

    Raises:
        ConfigError: the accounts file is invalid, or a flag value is out of range.
    """
    accounts = load_accounts(Path(config_file)) if config_file is not None else []
    try:
        return EmulatorConfig.model_validate(
            {
                "accounts": accounts,
                "error_mode": error_mode,
                "time_scale": time_scale,
                "state_file": state_file,
                "seed": seed,
            }
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid emulator option: {exc.errors()[0]['msg']}") from exc
