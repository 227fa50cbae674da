"""The base URL of an account's API: which one applies, and whether it can work at all.

Endpoints are appended to the base as text, so a base that cannot work (a bad scheme, host or
port, or a query that would swallow the paths) is refused here, once, as a
:class:`~reconciler.errors.ConfigError`, before any request: a transport error (or a crash) at
the first request would say much less. A base may carry credentials; they never reach a
message (:func:`~.secret.redact_url_credentials`).
"""

from __future__ import annotations

import httpx

from reconciler.api.secret import redact_url_credentials
from reconciler.errors import ConfigError

DEFAULT_API_BASE = "https://modelslab.com/api/"


def resolve_api_base(manifest_base: str | None, flag_base: str | None) -> str:
    """The base URL of an account's API, checked, always ending in ``/``.

    The manifest's ``api_base`` wins, then the ``--api-base`` flag (which click also fills
    from ``RECONCILER_API_BASE``), then :data:`DEFAULT_API_BASE`. A base that cannot work is a
    :class:`~reconciler.errors.ConfigError` here, before any request, rather than a transport
    error (or a crash) at the first one: see :func:`normalise_api_base`.
    """
    return normalise_api_base(manifest_base or flag_base or DEFAULT_API_BASE)


def normalise_api_base(base: str) -> str:
    """``base`` checked and ending in ``/``; :class:`~reconciler.errors.ConfigError` if unusable.

    Endpoints are appended to the base as text, so it must be an absolute http(s) URL with a
    host, a port in 1-65535 if any, and no query or fragment (which would swallow the path).
    """
    why = _base_problem(base)
    if why:
        shown = redact_url_credentials(base)
        raise ConfigError(f"invalid API base URL {shown!r}: {redact_url_credentials(why)}")
    return base if base.endswith("/") else base + "/"


def _base_problem(base: str) -> str:
    """Why ``base`` cannot serve as an API base URL, or ``""`` if it can."""
    try:
        url = httpx.URL(base)
        scheme, host, port = url.scheme, url.host, url.port
    except (httpx.InvalidURL, ValueError, OverflowError) as exc:
        return str(exc) or type(exc).__name__
    if scheme not in ("http", "https"):
        return f"the scheme must be http or https, not {scheme or 'none'!r}"
    if not host:
        return "there is no host"
    if port is not None and not 1 <= port <= 65535:
        return f"the port {port} is not in 1-65535"
    if url.query or url.fragment or "?" in base or "#" in base:
        return "a query or fragment would swallow the endpoint paths"
    return ""
