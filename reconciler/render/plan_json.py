"""The plan as a JSON document: the output of ``plan -o json`` and the content of a plan file.

This module turns a :class:`~reconciler.core.plan.Plan` into a plain document. It does not
read it back, nor read or write files (that is :mod:`reconciler.planfile`, the one module of
the saved plan), and never decides an exit code.

Format, ``format_version`` 1
----------------------------

One JSON object, keys sorted, indented by two spaces::

    {
      "format_version": 1,            # this document's version; readers refuse others
      "digest": "sha256:…",           # hash of format_version, accounts and blockers
      "ledger_available": true,       # false: replace and prune: managed were not detected
      "blockers": ["…"],              # run-level guards that fired; apply refuses to run
      "unread": ["…"],                # accounts left out: their live state could not be read
      "summary": {                    # counts of changes by action, across all accounts
        "load": 0, "reload": 0, "replace": 0, "delete": 0, "wait": 0,
        "noop": 0, "blocked": 0,
        "changes": 0                  # load + reload + replace + delete + wait
      },
      "accounts": [                   # sorted by account name
        {
          "account": "studio-prod",
          "api": "…",                 # community | enterprise
          "live_fingerprint": "sha256:…",  # the live state the plan was made from
          "blockers": ["…"],          # guards of this account (e.g. it would be left empty)
          "notes": ["…"],             # things to know (e.g. no ledger)
          "changes": [                # sorted by model_id; one per declared or live model
            {
              "model_id": "analog-diffusion",
              "action": "load",       # load | reload | replace | delete | wait | noop | blocked
              "reason": "…",          # for people only; never parse it
              "condition": "missing", # missing | loading | ready | failed | evicted |
                                      # unmanaged | unknown: what the plan saw
              "declared": true,       # a manifest declares the model
              "managed": false,       # the ledger says this tool loaded it
              "spec": {"url": "…"},   # load fields apply sends (never a key)
              "spec_hash": "sha256:…",
              "fields": [{"path": "url", "old": null, "new": "…"}],  # spec differences
              "origin": "manifests/prod.yaml:12"  # file:line of the declaration
            }
          ]
        }
      ]
    }

``digest`` and ``summary`` are derived (:data:`DERIVED_KEYS`): the reader of a plan file
(:mod:`reconciler.planfile`) drops them, and recomputes the digest to detect a hand-edited
file. The digest is also the marker of the PR comment, so a merge-time apply can tell whether
the plan it makes is the one that was reviewed. A change of meaning of any field above raises
``format_version``.
"""

from __future__ import annotations

from typing import Any, TextIO

from reconciler.core.plan import Action, Plan, plan_digest
from reconciler.render.safe_text import safe_json

#: Keys of the document that are computed from the plan rather than part of it.
DERIVED_KEYS = ("digest", "summary")


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as a JSON-ready dict, with its digest and a summary of the counts."""
    counts = plan.counts()
    changes = sum(n for action, n in counts.items() if Action(action).is_change)
    document = plan.model_dump(mode="json")
    return {
        **document,
        "digest": plan_digest(document),
        "summary": {**counts, "changes": changes},
    }


def plan_json_text(plan: Plan) -> str:
    """The document as text: sorted keys, two-space indent, a final newline; ASCII only and
    safe to print in a CI log (:func:`~reconciler.render.safe_text.safe_json`)."""
    return safe_json(plan_document(plan))


def write_plan_json(plan: Plan, stream: TextIO) -> None:
    """Write the plan's JSON document to ``stream``."""
    stream.write(plan_json_text(plan))
