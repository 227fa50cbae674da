"""Request validation with the API's Laravel-style messages, driven by the shared wire models.

The API is a Laravel app: a bad request gets ``{"status":"error","message":{field: [texts]}}``
with texts like ``The url field is required.`` and ``The selected model format is invalid.``
(api-spec §3, §7.8). The rules themselves come from the wire models the client sends with, so
what the emulator accepts is exactly what the client can produce; this module only translates
pydantic's errors into Laravel's words (an empty string counts as missing, as in Laravel).

Validation only; the handlers act on the parsed request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reconciler.emulator import assumptions as assumed

M = TypeVar("M", bound=BaseModel)

_TEXTS = {
    "missing": assumed.REQUIRED_TEXT,
    "literal_error": assumed.INVALID_CHOICE_TEXT,
    "string_type": assumed.NOT_A_STRING_TEXT,
}


class Invalid(Exception):
    """The request failed validation; ``fields`` maps each bad field to its messages."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        super().__init__(fields)


def parse(model: type[M], body: dict[str, Any], required: Sequence[str]) -> M:
    """The request ``body`` as ``model``.

    Raises:
        Invalid: a ``required`` field is missing, null or empty, or a value breaks the model.
    """
    problems = {name: _text("missing", name) for name in required if body.get(name) in (None, "")}
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            if name and name not in problems:
                problems[name] = _text(error["type"], name)
    else:
        if not problems:
            return parsed
    order = list(model.model_fields)
    ranked = sorted(problems, key=lambda n: order.index(n) if n in order else len(order))
    raise Invalid({name: problems[name] for name in ranked})


def _text(error_type: str, name: str) -> list[str]:
    template = _TEXTS.get(error_type, "The {attribute} is invalid.")
    return [template.format(attribute=name.replace("_", " "))]
