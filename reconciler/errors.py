"""The one exception tree of the reconciler.

Every error the reconciler expects derives from :class:`ReconcilerError`; the CLI's single
error boundary turns those into a short message and exit code 1, anything else into exit 3.
Third-party errors (pydantic, PyYAML, httpx) are translated once, at their boundary, with
``raise ... from exc``. Exceptions carry data and never print, and none of them ever holds an
API key: API errors carry the account and the endpoint, not the request body.

    ReconcilerError
     ├── ManifestError            bad manifests: every problem of a run, with file:line:col
     ├── ConfigError              bad flags, a missing key variable, an unreadable plan file
     ├── LedgerError              the ledger cannot be read or written
     │    └── LedgerLocked        another run holds the ledger's lock
     ├── StalePlanError           a saved plan whose live state has moved (plan-changed)
     ├── PlanBlocked              a guard stops the run before any request is sent
     ├── ApplyDeclined            the person at the terminal did not answer ``yes``
     └── ApiError                 anything the API or the network answered badly
          ├── InvalidKey          ``Invalid Api Key`` (HTTP 401 in modern mode)
          ├── ValidationFailed    Laravel-style field errors (HTTP 400)
          ├── ModelNotFound       ``Model id not found`` and its kin (HTTP 404)
          └── TransientError      worth retrying
               ├── RateLimited    spam filter or queue limit; carries ``retry_after``
               ├── ServerError    5xx and ``Failed, Try Again``
               ├── MalformedResponse  a body that is not the JSON the endpoint documents
               │    └── AnswerOverLimit   a body over the size or nesting limit
               └── ApiUnreachable a transport error or timeout; ``answer_lost`` when the
                                  request may have reached the server
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

#: Why an account or item failed, as reports and ``$GITHUB_OUTPUT`` name it (design.md §3).
FailureReason = Literal[
    "apply-failed",
    "plan-changed",
    "not-converged",
    "locked",
    "invalid-manifest",
    "api-unreachable",
    "rate-limited",
]


class ReconcilerError(Exception):
    """Base of every error the reconciler expects and reports as a user-facing failure."""

    #: The ``failure_reason`` this error maps to in reports (design.md §3).
    failure_reason: ClassVar[FailureReason] = "apply-failed"


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a manifest, located precisely enough to jump to it."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, str | int]:
        """The problem as plain data, for ``-o json`` and GitHub annotations."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class ManifestError(ReconcilerError):
    """One or more manifests are invalid; all problems of the run are reported together."""

    failure_reason = "invalid-manifest"

    def __init__(self, problems: Sequence[ManifestProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(ReconcilerError):
    """The run is misconfigured: a flag, an environment variable or a plan file."""

    failure_reason = "invalid-manifest"


class LedgerError(ReconcilerError):
    """The ledger cannot be read or written; the message says how to recover."""


class LedgerLocked(LedgerError):
    """Another run on this machine holds the ledger's lock."""

    failure_reason = "locked"


class StalePlanError(ReconcilerError):
    """A saved plan was made from a live state that has changed since."""

    failure_reason = "plan-changed"


class PlanBlocked(ReconcilerError):
    """A guard (``--max-deletes``, never leave an account empty) stops the run before it acts."""


class ApplyDeclined(ReconcilerError):
    """``apply`` asked on a terminal and the answer was not ``yes``: nothing was sent."""


class ApiError(ReconcilerError):
    """The API answered with an error, or could not be reached.

    ``account`` and ``endpoint`` say where; ``message`` is the API's own text (``message`` or
    ``messege``), ``tip`` its ``tip``/``tips``; ``status_code`` is the HTTP status, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        account: str = "",
        endpoint: str = "",
        status_code: int | None = None,
        tip: str = "",
    ) -> None:
        self.message = message
        self.account = account
        self.endpoint = endpoint
        self.status_code = status_code
        self.tip = tip
        super().__init__(self._render())

    def _render(self) -> str:
        where = " ".join(part for part in (self.account, self.endpoint) if part)
        code = f" (HTTP {self.status_code})" if self.status_code else ""
        return f"{where}: {self.message}{code}" if where else f"{self.message}{code}"


class InvalidKey(ApiError):
    """The API rejected the key (``Invalid Api Key``)."""


class ValidationFailed(ApiError):
    """The API rejected fields of the request; ``fields`` maps each to its messages."""

    def __init__(
        self,
        fields: Mapping[str, Sequence[str]],
        *,
        account: str = "",
        endpoint: str = "",
        status_code: int | None = None,
    ) -> None:
        self.fields = {name: tuple(msgs) for name, msgs in fields.items()}
        text = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in self.fields.items())
        super().__init__(
            text or "validation failed",
            account=account,
            endpoint=endpoint,
            status_code=status_code,
        )


class ModelNotFound(ApiError):
    """The API does not know the model id (``Model id not found``)."""


class TransientError(ApiError):
    """An error worth retrying after a while.

    Its ``failure_reason`` is ``api-unreachable`` for every kind (5xx, malformed body, rate
    limit, transport): the API could not be used just now, which is not a failed apply.
    """

    failure_reason: ClassVar[FailureReason] = "api-unreachable"


class RateLimited(TransientError):
    """The spam filter or the queue limit refused the request; retry after ``retry_after``.

    Its ``failure_reason`` is ``rate-limited``: the API answered, and another run (or this
    one) is using the account; nothing is wrong with the API or the manifests.
    """

    failure_reason = "rate-limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        account: str = "",
        endpoint: str = "",
        status_code: int | None = None,
        tip: str = "",
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            message, account=account, endpoint=endpoint, status_code=status_code, tip=tip
        )


class ServerError(TransientError):
    """A 5xx answer, or the documented ``Failed, Try Again`` body."""


class MalformedResponse(TransientError):
    """The body was not the JSON the endpoint documents (HTML error page, truncated JSON…)."""


class AnswerOverLimit(MalformedResponse):
    """The body went over the client's size limit (after decompression) or nesting limit.

    Not worth retrying: the same server gives the same answer, and reading it again costs the
    whole limit again.
    """


class ApiUnreachable(TransientError):
    """The request failed in transport: refused, reset or timed out.

    ``answer_lost`` is true when the request may have reached the server (a read timeout or a
    dropped connection after sending): a non-idempotent call must then be re-observed from the
    listing before it is ever sent again.
    """

    def __init__(
        self, message: str, *, answer_lost: bool = False, account: str = "", endpoint: str = ""
    ) -> None:
        self.answer_lost = answer_lost
        super().__init__(message, account=account, endpoint=endpoint)
