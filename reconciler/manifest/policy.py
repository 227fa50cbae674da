"""The operator's trust policy: where a key may be sent and which variables may hold one.

Manifests come from pull requests; the operator's settings (flags, environment, the workflow
files on the default branch) do not (design.md §7). This module holds those settings as pure
data and answers two questions about a manifest, before any request is sent:

- may a key be sent to this ``api_base``? Yes for the official bases, loopback (the emulator)
  and the bases the operator adds (``--api-base``, ``--allow-api-base``); plain ``http://`` only
  to loopback.
- may a manifest name this ``key_env``? Only a name that matches the operator's pattern
  (default: names starting with ``MODELSLAB_``), so that no manifest can name ``GITHUB_TOKEN``
  or a cloud credential.

URLs are checked against a deliberately narrow grammar (no userinfo, no backslash, no
whitespace, a plain host name or IP address) so that this parser and the HTTP client's cannot
disagree about which host a URL names. Messages never repeat a URL's userinfo, and never repeat
a ``key_env`` value at all: a key pasted there by mistake must not be echoed.

This module does no I/O and imports no network library.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.errors import ConfigError

#: The bases a key may always be sent to (besides loopback).
OFFICIAL_API_BASES: tuple[str, ...] = (
    "https://modelslab.com/api/",
    "https://stablediffusionapi.com/api/",
)
#: Names a manifest's ``key_env`` may take unless the operator says otherwise (full match).
DEFAULT_KEY_ENV_PATTERN = r"MODELSLAB_[A-Za-z0-9_]+"
#: What an environment variable name looks like (POSIX portable names).
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Bounds on what a manifest or an operator may give: a real base is far shorter.
MAX_URL_LENGTH = 2048
MAX_KEY_ENV_LENGTH = 128

#: Where to change each setting, quoted by the messages.
ALLOW_BASE_HINT = (
    "the operator can allow it with --allow-api-base URL (or RECONCILER_ALLOWED_API_BASES)"
)
KEY_ENV_HINT = "the operator can allow it with --key-env-pattern (or RECONCILER_KEY_ENV_PATTERN)"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """A parsed API base: scheme, lower-case host, port (default filled in) and path."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def loopback(self) -> bool:
        """Whether the host is this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    def within(self, allowed: Origin) -> bool:
        """Same scheme, host and port as ``allowed``, and a path at or under its path."""
        same = (self.scheme, self.host, self.port) == (allowed.scheme, allowed.host, allowed.port)
        return same and self.path.startswith(allowed.path)


def redact_url(url: str) -> str:
    """``url`` safe to print: any userinfo (``user:password@``) replaced, length bounded."""
    match = _SCHEME.match(url)
    start = match.end() if match else 0
    end = min((i for i in (url.find(c, start) for c in "/?#") if i >= 0), default=len(url))
    authority = url[start:end]
    if "@" in authority:
        url = url[:start] + "***@" + authority.rsplit("@", 1)[1] + url[end:]
    shown = "".join(c if c.isprintable() and not c.isspace() else "?" for c in url)
    return shown if len(shown) <= 120 else shown[:117] + "..."


def parse_api_base(url: str) -> Origin | str:
    """The :class:`Origin` of ``url``, or why it cannot serve as an API base URL.

    Endpoints are appended to a base as text, so it must be an absolute ``http(s)`` URL with a
    host, a port in 1-65535 if any, and no query or fragment; userinfo would put a password in
    every log line, so it is refused too.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        return "it contains whitespace, a control character or a backslash"
    match = _SCHEME.match(url)
    if match is None:
        return "it is not an absolute URL (expected https://host/api/)"
    scheme = match.group(1).lower()
    if scheme not in _DEFAULT_PORTS:
        return f"the scheme must be http or https, not {scheme!r}"
    rest = url[match.end() :]
    if "#" in rest:
        return "a fragment (#...) would swallow the endpoint paths"
    if "?" in rest:
        return "a query (?...) would swallow the endpoint paths"
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        return "it carries a user name or password (user:password@): keys only go in requests"
    host_port = _split_host_port(authority)
    if isinstance(host_port, str):
        return host_port
    if not _PATH.fullmatch(path):
        return "its path has characters a URL path cannot hold"
    host, port = host_port
    path = "/" + path if slash else "/"
    return Origin(
        scheme, host, port or _DEFAULT_PORTS[scheme], path if path.endswith("/") else path + "/"
    )


def _split_host_port(authority: str) -> tuple[str, int | None] | str:
    """``host[:port]`` split and checked; an error message when either part is unusable."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            return "the IPv6 address is not closed with ']'"
        host, after = authority[: close + 1], authority[close + 1 :]
        try:
            host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return "the host is not a valid IPv6 address"
        if after and not after.startswith(":"):
            return "unexpected text after the IPv6 address"
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_ = authority.partition(":")
        port_text = port_text_ if colon else None
        host = host.lower()
        if not host:
            return "there is no host"
        if not all(_HOST_NAME.fullmatch(label) for label in host.split(".")):
            return "the host is not a valid host name or IP address"
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
        return "the port is not a number in 1-65535"
    port = int(port_text)
    if not 1 <= port <= 65535:
        return f"the port {port} is not in 1-65535"
    return host, port


@dataclass(frozen=True)
class TrustPolicy:
    """Where keys may go and which variables may hold them: the operator's settings.

    ``extra_api_bases`` are the bases the operator added (``--api-base`` and the allow-list),
    each already checked by :func:`operator_policy`. ``key_env_pattern`` must match a whole
    variable name.
    """

    extra_api_bases: tuple[str, ...] = ()
    key_env_pattern: str = DEFAULT_KEY_ENV_PATTERN

    def allowed_origins(self) -> tuple[Origin, ...]:
        """The official bases and the operator's, parsed."""
        parsed = (parse_api_base(base) for base in (*OFFICIAL_API_BASES, *self.extra_api_bases))
        return tuple(origin for origin in parsed if isinstance(origin, Origin))

    def api_base_problem(self, url: str) -> str | None:
        """Why a manifest's ``api_base`` is refused (a message saying how to allow it), or None."""
        origin = parse_api_base(url)
        if isinstance(origin, str):
            return f"invalid API base URL {redact_url(url)!r}: {origin}"
        if origin.loopback:
            return None
        if any(origin.within(allowed) for allowed in self.allowed_origins()):
            return None
        if origin.scheme == "http":
            return (
                f"{redact_url(url)!r} is plain http:// to a host that is not loopback (a key "
                f"would cross the network in clear text): use an https:// base; {ALLOW_BASE_HINT}"
            )
        return (
            f"a key may not be sent to {redact_url(url)!r}: it is not an official API base, "
            f"loopback, nor one the operator allowed; {ALLOW_BASE_HINT}"
        )

    def key_env_problem(self, name: str) -> str | None:
        """Why a manifest's ``key_env`` is refused, or None; never repeats the value."""
        if len(name) > MAX_KEY_ENV_LENGTH:
            return f"key_env is longer than {MAX_KEY_ENV_LENGTH} characters (value hidden)"
        if not VARIABLE_NAME.fullmatch(name):
            return "key_env is not a valid variable name (value hidden)"
        if not re.fullmatch(self.key_env_pattern, name):
            return (
                f"key_env names a variable outside the operator's pattern "
                f"{self.key_env_pattern!r} (value hidden); {KEY_ENV_HINT}"
            )
        return None


def operator_policy(
    api_base: str | None = None,
    allowed: Iterable[str] = (),
    key_env_pattern: str | None = None,
) -> TrustPolicy:
    """The policy from the operator's flags and environment, each value checked.

    ``allowed`` items may each hold several bases separated by commas or whitespace (as the
    ``RECONCILER_ALLOWED_API_BASES`` variable does).

    Raises:
        ConfigError: a base is not a usable URL, or the pattern is not a regular expression.
    """
    bases = [base for item in allowed for base in re.split(r"[\s,]+", item) if base]
    if api_base:
        bases.insert(0, api_base)
    for base in bases:
        why = parse_api_base(base)
        if isinstance(why, str):
            raise ConfigError(f"invalid API base URL {redact_url(base)!r}: {why}")
        if why.scheme == "http" and not why.loopback:
            raise ConfigError(
                f"invalid API base URL {redact_url(base)!r}: plain http:// is allowed only to "
                "loopback (a key would cross the network in clear text); use https://"
            )
    pattern = key_env_pattern or DEFAULT_KEY_ENV_PATTERN
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"invalid --key-env-pattern {pattern!r}: {exc}") from exc
    return TrustPolicy(tuple(bases), pattern)
