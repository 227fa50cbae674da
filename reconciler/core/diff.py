"""Field-level differences between two load specs, in the project's own type.

DeepDiff does the comparing; its output is converted at once into :class:`FieldChange` and
never reaches plans or renderers (style.md rule 7).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict


class FieldChange(BaseModel):
    """One load field that differs: its name, the value last applied, the value declared."""

    model_config = ConfigDict(frozen=True)

    path: str
    old: str | None = None
    new: str | None = None


def diff_specs(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[FieldChange, ...]:
    """Every field added, removed or changed from ``old`` to ``new``, sorted by field name."""
    if not old:  # a first load: every field is new, nothing to compare
        return tuple(FieldChange(path=name, new=new[name]) for name in sorted(new))
    from deepdiff import DeepDiff  # ~45 ms to import: only plans with a changed spec need it

    # threshold 0: always descend into the dicts, never report "the whole spec changed".
    tree = DeepDiff(dict(old), dict(new), view="tree", threshold_to_diff_deeper=0)
    changes: dict[str, FieldChange] = {}
    for kind in (
        "values_changed",
        "type_changes",
        "dictionary_item_added",
        "dictionary_item_removed",
    ):
        for level in tree.get(kind, []):
            path = ".".join(str(part) for part in level.path(output_format="list"))
            changes[path] = FieldChange(path=path, old=_text(level.t1), new=_text(level.t2))
    return tuple(changes[name] for name in sorted(changes))


def _text(value: object) -> str | None:
    """DeepDiff marks a missing side with a sentinel object; anything not a string is absent."""
    return value if isinstance(value, str) else None
