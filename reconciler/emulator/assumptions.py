"""Every text, shape and rule of the emulated API in one place, documented or *assumed*.

api-spec.md §7 asks that each behaviour the docs leave open be kept in one table, so that it can
be changed in one edit when the real API is seen to behave differently. Documented constants sit
here too, so that the handlers never spell a message themselves. :data:`ASSUMPTIONS` lists the
assumed ones with a one-line reason each; the package docstring repeats that list and a test
keeps the two in step.

Nothing here has behaviour: constants and a table only.
"""

from __future__ import annotations

from reconciler.api.wire import STATUS_FAILED, STATUS_LOADING, STATUS_READY

# --- Model statuses ------------------------------------------------------------------------

#: ``model_list`` statuses (api-spec §7.3): ``model_ready`` is documented, the others assumed.
LOADING, READY, FAILED = STATUS_LOADING, STATUS_READY, STATUS_FAILED
#: Emulator-only status of a model that is owned but off the inference server; never on the API.
EVICTED = "evicted"
MODEL_STATUSES = (LOADING, READY, FAILED, EVICTED)

# --- Documented answers (api-spec §2–3) ----------------------------------------------------

LOAD_STARTED = "model load started"
FINETUNE_LIST_MESSEGE = "model list"
MODEL_ID_NOT_FOUND = "Model id not found"
MODEL_EXISTS = "Model exists on server"
MODEL_DELETED = "Model deleted on server"
CACHE_CLEARED = "Cache cleared successfully"
SYSTEM_STATUS = "ok"
INVALID_KEY = "Invalid Api Key"
INVALID_KEY_TIP = (
    "1. Make sure you are passing Content-Type: application/json in header. 2. Make sure you are "
    "doing POST request with valid JSON. 3. Make sure your JSON does not have error, use jsonlint "
    "to validate json array. 4. Make sure you have valid API key."
)
SPAM_MESSAGE = "Rate limit exceeded"
SPAM_TIPS = (
    "you are sending same request multiple times, spam filter is enabled, please wait for 30 "
    "seconds and try again"
)
QUEUE_LIMIT_MESSAGE = "Rate limit exceeded. Maximum {limit} queued requests allowed."
QUEUE_RETRY_AFTER = 30
FAILED_TRY_AGAIN = "Failed, Try Again"
#: ``get_all_models``' ``load_data`` format (documented); the time zone (UTC) is assumed.
LOAD_DATA_FORMAT = "%m/%d/%Y %H:%M:%S"
#: Laravel validation texts; ``{attribute}`` is the field name with ``_`` read as a space.
REQUIRED_TEXT = "The {attribute} field is required."
INVALID_CHOICE_TEXT = "The selected {attribute} is invalid."
NOT_A_STRING_TEXT = "The {attribute} must be a string."

# --- Assumed answers (api-spec §7) ----------------------------------------------------------

RELOAD_STARTED = "model reload started"
ALREADY_LOADED = "model already loaded"
LOAD_IN_PROGRESS = "model load in progress"
NOT_ON_SERVER = "Model not found on server"
WEBHOOK_LOADED = "model loaded successfully"
WEBHOOK_FAILED = "model load failed"
#: Seconds a webhook delivery may take; one attempt, no retry.
WEBHOOK_TIMEOUT = 5.0
#: Enterprise ``model_type`` values filed under their own ``get_all_models`` list.
ENTERPRISE_SIDE_LISTS = {"lora": "lora_models", "embeddings": "embeddings_models"}
ENTERPRISE_EVICTS = False
#: ``created_at`` of the account's own ``model_list`` items: Laravel's JSON date format, UTC.
CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.000000Z"
#: HTTP status per kind of answer in ``modern`` mode; ``legacy`` sends 200 for all of them.
MODERN_STATUS = {
    "ok": 200,
    "validation": 400,
    "invalid_key": 401,
    "not_found": 404,
    "rate_limited": 429,
    "failed": 500,
}
UNKNOWN_PATH = {"status": "error", "message": "Not Found"}

#: The public catalogue ``model_list`` starts with (api-spec §2.2; elided texts filled in).
CATALOGUE: tuple[dict[str, str | None], ...] = (
    {
        "model_id": "midjourney",
        "status": READY,
        "created_at": None,
        "instance_prompt": "mdjrny-v4 style",
        "model_name": "MidJourney V4",
        "description": "Openjourney is an open source Stable Diffusion fine tuned model on "
        "Midjourney images, by PromptHero",
        "screenshots": "https://d1okzptojspljx.cloudfront.net/generations/14853540911669470514.png",
    },
    {
        "model_id": "anything-v3",
        "status": READY,
        "created_at": None,
        "instance_prompt": None,
        "model_name": "Anything V3",
        "description": "Anything V3 is a latent diffusion model for anime-style images.",
        "screenshots": "https://d1okzptojspljx.cloudfront.net/generations/anything-v3.png",
    },
    {
        "model_id": "wifu-diffusion",
        "status": READY,
        "created_at": None,
        "instance_prompt": None,
        "model_name": "Waifu Diffusion",
        "description": "Waifu Diffusion is Stable Diffusion fine tuned on anime images.",
        "screenshots": "https://d1okzptojspljx.cloudfront.net/generations/wifu-diffusion.png",
    },
)

#: The assumed behaviours, name → what the emulator does. The package docstring lists them all.
ASSUMPTIONS: dict[str, str] = {
    "statuses": "model_list shows model_loading during a load or reload, model_ready when "
    "servable, model_failed when the load failed; failed models stay listed and owned",
    "reload-texts": "model_reload answers 'model reload started' for an evicted or failed model, "
    "'model already loaded' for a ready one (counts as a use), 'model load in progress' "
    "while loading; all status success",
    "not-on-server": "verify_model and delete_model answer 'Model not found on server' "
    "(HTTP 404 in modern mode) for an id not on the enterprise server",
    "webhook": "an enterprise load carrying webhook POSTs {status: success|failed, model_id, "
    "message} when it ends; one attempt, 5 s timeout, no retry",
    "enterprise-no-evict": "enterprise servers never evict idle models",
    "enterprise-lists": "get_all_models files model_type lora under lora_models and embeddings "
    "under embeddings_models; loading and failed models are not listed; load_data is UTC",
    "eviction": "a community model ready or failed for idle_evict_seconds since its last load, "
    "reload or use leaves model_list but stays in finetune_list",
    "replace": "loading an existing id replaces its spec and starts a new load",
    "fail-urls": "a load of a url in fail_urls (decided when it starts) ends model_failed after "
    "the usual load time",
    "queue": "the queue limit counts the account's models in model_loading, on both APIs; "
    "re-loading a model does not count that model against itself",
    "spam-filter": "covers every /api/ endpoint; the window runs from the last accepted "
    "identical request (same path, same JSON), rejected ones do not extend it, nor does a load "
    "the queue limit refused",
    "spam-retry-after": "in modern mode the spam-filter body also carries retry_after (the "
    "seconds left in the window), as every 429 does",
    "retry-after-real": "retry_after (and Retry-After) count the client's real seconds: whole "
    "seconds, rounded up, at time scale 1 as documented; under a faster clock the emulated wait "
    "divided by the time scale, to the millisecond, so that a client waiting exactly that long "
    "is not held a whole real second (many emulated minutes)",
    "modern-codes": "modern mode maps validation 400, invalid key 401, not found 404, rate "
    "limits 429, Failed, Try Again 500",
    "created-at": "the account's own model_list items carry created_at in Laravel's ISO format "
    "and model_name/screenshots from the load; the catalogue's elided texts are made up",
    "unknown-path": "an unknown /api/ path answers HTTP 404 {status: error, message: Not Found} "
    "in both modes",
    "faults": "5xx faults (real HTTP 500/502/503 in both modes) and Failed, Try Again happen "
    "before the request is processed; hung answers (held until the client leaves, hang_seconds "
    "pass or the server stops) and malformed ones (HTTP 200 with an HTML page or truncated "
    "JSON) happen after it: the answer is lost, the effect is not",
    "ignored-fields": "force_load, hf_upload, revision and the other optional load fields are "
    "validated and stored but change nothing",
}
