"""The plan's JSON document: shape, determinism, and the round trip back to a Plan."""

from __future__ import annotations

import io
import json

from reconciler.core.plan import Plan
from reconciler.planfile import plan_from_document
from reconciler.render.plan_json import plan_document, write_plan_json


def test_document_has_the_documented_keys(sample_plan: Plan) -> None:
    document = plan_document(sample_plan)
    assert sorted(document) == [
        "accounts",
        "blockers",
        "digest",
        "format_version",
        "ledger_available",
        "summary",
        "unread",
    ]
    assert document["format_version"] == 1
    assert document["digest"] == sample_plan.digest()
    assert document["summary"] == {
        "load": 1,
        "reload": 1,
        "replace": 1,
        "delete": 1,
        "wait": 1,
        "noop": 4,
        "blocked": 1,
        "changes": 5,
    }
    first = document["accounts"][0]
    assert first["account"] == "gpu-box"
    assert first["changes"][1]["action"] == "delete"


def test_json_text_is_sorted_and_stable(sample_plan: Plan) -> None:
    one, two = io.StringIO(), io.StringIO()
    write_plan_json(sample_plan, one)
    write_plan_json(sample_plan, two)
    assert one.getvalue() == two.getvalue()
    assert one.getvalue().endswith("}\n")
    parsed = json.loads(one.getvalue())
    assert list(parsed) == sorted(parsed)
    assert one.getvalue().startswith('{\n  "accounts": [')


def test_round_trip_through_json_text(sample_plan: Plan) -> None:
    stream = io.StringIO()
    write_plan_json(sample_plan, stream)
    again = plan_from_document(json.loads(stream.getvalue()))
    assert again == sample_plan
    assert again.digest() == sample_plan.digest()
