"""The knobs of the API client: timeouts, retry budgets, the spam window, concurrency.

One frozen value shared by the modules of the client (:mod:`.retry` reads the budgets and
deadlines, :mod:`.spam` the window, :mod:`.client` the timeouts, limits and concurrency), so
that none of them has to import another just to learn a number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts, retry budget, spam window and concurrency of an :class:`~.client.ApiClient`.

    The spam window also spaces the retries of one request, which is resent identically: with
    the defaults a failing read is retried about every 30 s, within ``deadline``.
    """

    request_timeout: float = 30.0  # per request, connect to last byte of the body
    deadline: float = 300.0  # overall time budget for the retries of one call
    #: How long a call keeps trying an API it cannot reach (refused, no route, connect timeout)
    #: before it gives up and says why; also the connect timeout of one request.
    unreachable_deadline: float = 15.0
    #: The largest answer read, counted after decompression: a listing of 100k models is
    #: about 25 MB; a bigger answer is an error for its account, not a memory spike.
    max_body_bytes: int = 64 * 1024 * 1024
    spam_window: float = 30.0  # an identical (endpoint, body) is never resent sooner
    retry_attempts: int = 6
    #: Rate-limit refusals one call waits out (the deadline bounds them too): enough probes of
    #: a legacy spam window (``responses.SPAM_PROBE_SHARE``) to span four windows.
    rate_limited_attempts: int = 50
    retry_wait_initial: float = 1.0  # also the bound of the random jitter
    retry_wait_max: float = 30.0
    max_concurrency: int = 16  # HTTP requests in flight, across every account


DEFAULT_SETTINGS = ClientSettings()
#: Bounds of :func:`concurrency_for`: the old fixed cap, and a number of sockets that stays well
#: inside the usual limit of 1024 open files.
MIN_CONCURRENCY, MAX_CONCURRENCY = 16, 512


def concurrency_for(queue_limits: Iterable[int]) -> int:
    """The default cap on requests in flight for a run over accounts with these queue limits.

    Enough for every account to fill its queue at once (the per-account limit still holds each
    one to its queue limit), so a run over 100 accounts is not held to 16 loads in flight.
    """
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, sum(queue_limits)))
