"""A faithful emulator of the ModelsLab / Stable Diffusion API's model-management endpoints.

The real API cannot be reached from tests, benchmarks or the demo, so they run against this:
a starlette app (:func:`create_app`) that implements api-spec.md §7 on an emulated clock, with
both error transports (``legacy``: HTTP 200 and ``status`` in the body; ``modern``: 4xx/429/5xx),
the spam filter and queue limit, seeded fault injection, and a control surface under
``/_emulator/`` (design.md §5). :func:`serve` runs it in the foreground (``reconciler
emulator``); :func:`running_emulator` in a background thread. It imports nothing of the
reconciler but the wire models and the errors, and nothing but the CLI and the demo imports it.

Assumed behaviours (api-spec §7 *(assumed)*; all texts and rules live in :mod:`.assumptions`):

- statuses: ``model_list`` shows ``model_loading`` during a load or reload, ``model_ready``
  when servable, ``model_failed`` when the load failed; failed models stay listed and owned.
- reload-texts: ``model_reload`` answers ``model reload started`` for an evicted or failed
  model, ``model already loaded`` for a ready one (counts as a use), ``model load in progress``
  while loading; all with status ``success``.
- not-on-server: ``verify_model`` and ``delete_model`` answer ``Model not found on server``
  (HTTP 404 in modern mode) for an id not on the enterprise server.
- webhook: an enterprise load carrying ``webhook`` POSTs ``{status: success|failed, model_id,
  message}`` when it ends; one attempt, 5 s timeout, no retry.
- enterprise-no-evict: enterprise servers never evict idle models.
- enterprise-lists: ``get_all_models`` files ``model_type`` lora under ``lora_models`` and
  embeddings under ``embeddings_models``; loading and failed models are not listed;
  ``load_data`` is UTC.
- eviction: a community model ready or failed for ``idle_evict_seconds`` (7 days) since its
  last load, reload or use leaves ``model_list`` but stays in ``finetune_list``.
- replace: loading an existing id replaces its spec and starts a new load.
- fail-urls: a load of a url in ``fail_urls`` (decided when it starts) ends ``model_failed``
  after the usual load time.
- queue: the queue limit counts the account's models in ``model_loading``, on both APIs;
  re-loading a model does not count that model against itself.
- spam-filter: covers every ``/api/`` endpoint; the window runs from the last accepted
  identical request (same path, same JSON), rejected ones do not extend it, nor does a load
  the queue limit refused.
- spam-retry-after: in modern mode the spam-filter body also carries ``retry_after`` (the
  seconds left in the window), as every 429 does.
- retry-after-real: ``retry_after`` (and ``Retry-After``) count the client's real seconds: whole
  seconds, rounded up, at time scale 1 as documented; under a faster clock the emulated wait
  divided by the time scale, to the millisecond.
- modern-codes: modern mode maps validation 400, invalid key 401, not found 404, rate limits
  429, ``Failed, Try Again`` 500.
- created-at: the account's own ``model_list`` items carry ``created_at`` in Laravel's ISO
  format and ``model_name``/``screenshots`` from the load; the catalogue's elided texts are
  made up.
- unknown-path: an unknown ``/api/`` path answers HTTP 404 ``{status: error, message: Not
  Found}`` in both modes.
- faults: 5xx faults (real HTTP 500/502/503 in both modes) and ``Failed, Try Again`` happen
  before the request is processed; hung answers (held until the client leaves, ``hang_seconds``
  pass or the server stops) and malformed ones (HTTP 200 with an HTML page or truncated JSON)
  happen after it: the answer is lost, the effect is not.
- ignored-fields: ``force_load``, ``hf_upload``, ``revision`` and the other optional load
  fields are validated and stored but change nothing.
"""

from __future__ import annotations

from reconciler.emulator.app import create_app
from reconciler.emulator.config import AccountConfig, EmulatorConfig, build_config, load_accounts
from reconciler.emulator.server import EmulatorHandle, running_emulator, serve
from reconciler.emulator.state import EmulatorState
from reconciler.emulator.world import ModelRecord

__all__ = [
    "AccountConfig",
    "EmulatorConfig",
    "EmulatorHandle",
    "EmulatorState",
    "ModelRecord",
    "build_config",
    "create_app",
    "load_accounts",
    "running_emulator",
    "serve",
]
