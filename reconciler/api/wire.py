"""Pydantic models of the ModelsLab API's JSON bodies, shared by the client and the emulator.

Both sides of the wire import these, so the emulator cannot serve a shape the client does not
read, nor the client send a body the emulator does not check. The field names and spellings
are the API's own, misspellings included (``messege``, ``tips``, ``load_data``); see
``api-spec.md`` §2–3 and §7. Enum tuples are the union of the values the three generations of
the docs list, so a manifest written against any of them validates.

This module holds data shapes only: no HTTP, no I/O.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, RootModel

# ---------------------------------------------------------------------------------------------
# The API's vocabulary (api-spec §2.3, §2.5). Literal types for the models, tuples for messages.
# ---------------------------------------------------------------------------------------------

ModelFormat = Literal["diffusers", "safetensors", "ckpt"]
ModelCategory = Literal[
    "stable_diffusion",
    "stable_diffusion_xl",
    "controlnet",
    "lora",
    "embeddings",
    "vae",
    "flux_lora",
    "flux_embeddings",
    "flux_checkpoint",
    "flux",
    "z_image",
]
ModelSubcategory = Literal["lora"]
Visibility = Literal["private", "public"]
YesNo = Literal["yes", "no"]
Revision = Literal["fp16", "fp32"]
EnterpriseModelType = Literal[
    "huggingface", "api_trained", "custom_ckpt", "lora", "embeddings", "controlnet"
]

MODEL_FORMATS: tuple[str, ...] = get_args(ModelFormat)
MODEL_CATEGORIES: tuple[str, ...] = get_args(ModelCategory)
MODEL_SUBCATEGORIES: tuple[str, ...] = get_args(ModelSubcategory)
VISIBILITIES: tuple[str, ...] = get_args(Visibility)
YES_NO: tuple[str, ...] = get_args(YesNo)
REVISIONS: tuple[str, ...] = get_args(Revision)
ENTERPRISE_MODEL_TYPES: tuple[str, ...] = get_args(EnterpriseModelType)

#: Documented defaults of the optional load fields, by API (api-spec §2.3 and §2.5).
COMMUNITY_LOAD_DEFAULTS: dict[str, str] = {
    "model_visibility": "public",
    "force_load": "yes",
    "revision": "fp16",
    "hf_upload": "no",
}
ENTERPRISE_LOAD_DEFAULTS: dict[str, str] = {
    "from_safetensors": "no",
    "revision": "fp32",
    "upcast_attention": "no",
}

#: Relative paths (under the base ending in ``/api/``) of every endpoint the reconciler uses.
FINETUNE_LIST = "v3/finetune_list"
MODEL_LIST = "v4/dreambooth/model_list"
LOAD_MODEL = "v3/load_model"
MODEL_RELOAD = "v4/dreambooth/model_reload"
MODEL_RELOAD_V6 = "v6/images/model_reload"
ENTERPRISE_LOAD_MODEL = "v1/enterprise/load_model"
ENTERPRISE_VERIFY_MODEL = "v1/enterprise/verify_model"
ENTERPRISE_GET_ALL_MODELS = "v1/enterprise/get_all_models"
ENTERPRISE_DELETE_MODEL = "v1/enterprise/delete_model"
ENTERPRISE_CLEAR_CACHE = "v1/enterprise/clear_cache"
ENTERPRISE_SYSTEM_DETAILS = "v1/enterprise/system_details"

#: Model statuses in ``model_list`` (api-spec §7.3; ``model_loading``/``model_failed`` assumed).
STATUS_LOADING = "model_loading"
STATUS_READY = "model_ready"
STATUS_FAILED = "model_failed"


class _Body(BaseModel):
    """A JSON body the API sends or receives; unknown keys are kept, never rejected."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


class KeyRequest(_Body):
    """A body with the key only: ``finetune_list``, ``model_list``, ``get_all_models``…"""

    key: str


class ModelIdRequest(KeyRequest):
    """``model_reload``, ``verify_model``, ``delete_model``: the key and one model id."""

    model_id: str


class CommunityLoadRequest(KeyRequest):
    """``v3/load_model``; every value is a string (api-spec §2.3)."""

    url: str
    model_id: str
    model_format: ModelFormat
    model_category: ModelCategory
    model_visibility: Visibility
    model_name: str
    model_subcategory: ModelSubcategory | None = None
    force_load: YesNo | None = None
    revision: Revision | None = None
    model_image: str | None = None
    hf_upload: YesNo | None = None


class EnterpriseLoadRequest(KeyRequest):
    """``v1/enterprise/load_model`` (api-spec §2.5)."""

    url: str
    model_id: str
    model_type: EnterpriseModelType
    from_safetensors: YesNo | None = None
    revision: Revision | None = None
    webhook: str | None = None
    upcast_attention: YesNo | None = None


#: Fields of each load request that are required (no documented default).
COMMUNITY_REQUIRED = (
    "url",
    "model_id",
    "model_format",
    "model_category",
    "model_visibility",
    "model_name",
)
ENTERPRISE_REQUIRED = ("url", "model_id", "model_type")


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


class StatusMessage(_Body):
    """The common ``{"status", "message"}`` answer (load started, deleted, cache cleared…)."""

    status: str
    message: str


class FinetuneEntry(_Body):
    """An object item of ``finetune_list``'s ``data``, accepted besides bare id strings."""

    model_id: str


class FinetuneListResponse(_Body):
    """``v3/finetune_list``: the ids the account owns, under the misspelled ``messege``."""

    status: str
    messege: str = "model list"
    data: list[str | FinetuneEntry] = Field(default_factory=list)

    def model_ids(self) -> list[str]:
        """The owned ids, whichever of the two item shapes the API sent."""
        return [item if isinstance(item, str) else item.model_id for item in self.data]


class PublicModel(_Body):
    """One item of ``v4/dreambooth/model_list`` (the OpenAPI ``PublicModel``)."""

    model_id: str
    status: str
    created_at: str | None = None
    instance_prompt: str | None = None
    model_name: str = ""
    description: str = ""
    screenshots: str = ""


class ModelListResponse(RootModel[list[PublicModel]]):
    """``v4/dreambooth/model_list``: a bare JSON array, no status wrapper."""


class LoadedModel(_Body):
    """An item of ``get_all_models``: the id and when it was loaded (``MM/DD/YYYY HH:MM:SS``)."""

    model_id: str
    load_data: str = ""


class GetAllModelsResponse(_Body):
    """``v1/enterprise/get_all_models``, with the undocumented lora and embeddings lists."""

    status: str
    models: list[LoadedModel] = Field(default_factory=list)
    lora_models: list[LoadedModel] = Field(default_factory=list)
    embeddings_models: list[LoadedModel] = Field(default_factory=list)

    def all_models(self) -> list[LoadedModel]:
        """Every loaded model, whatever list the server filed it under."""
        return [*self.models, *self.lora_models, *self.embeddings_models]


class SystemDetails(_Body):
    """``v1/enterprise/system_details``; note ``"status": "ok"``, not ``"success"``."""

    status: str
    model_count: int = 0
    queue_time: float = 0


class ErrorBody(_Body):
    """Any error body: ``status`` is ``error`` or ``failed``.

    ``message`` (or the misspelled ``messege``) is a string, or a Laravel-style map from field
    to messages for validation errors. ``tip``/``tips`` and ``retry_after`` are optional.
    """

    status: Literal["error", "failed"]
    message: str | dict[str, list[str]] | None = None
    messege: str | dict[str, list[str]] | None = None
    tip: str | None = None
    tips: str | None = None
    retry_after: float | None = None

    def text(self) -> str | dict[str, list[str]]:
        """The message, whichever spelling carried it."""
        if self.message is not None:
            return self.message
        return self.messege if self.messege is not None else ""

    def hint(self) -> str:
        """The tip, whichever spelling carried it."""
        return self.tip or self.tips or ""


class LoadWebhook(_Body):
    """What the enterprise server POSTs to a load's ``webhook`` when it ends (assumed shape)."""

    status: Literal["success", "failed"]
    model_id: str
    message: str


def body_of(model: BaseModel) -> dict[str, Any]:
    """A request model as the JSON body to send: unset optional fields are left out."""
    return model.model_dump(mode="json", exclude_none=True)
