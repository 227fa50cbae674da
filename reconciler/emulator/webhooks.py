"""Delivery of the webhooks enterprise loads owe when they end.

The payload is an assumption (api-spec §7.9): ``{"status": "success"|"failed", "model_id",
"message"}``, POSTed once, with a short timeout and no retry, like ModelsLab's best-effort
generation webhooks. Deliveries run as background tasks so a slow receiver never holds up an
API answer, and each outcome is logged in ``/_emulator/state`` under ``webhooks``.

Sending only; the state decides what is owed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from reconciler.emulator import assumptions as assumed
from reconciler.emulator.world import WebhookDelivery


class WebhookSender:
    """Sends owed webhooks in the background and logs how each went."""

    def __init__(self, log: list[dict[str, Any]]) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, deliveries: list[WebhookDelivery]) -> None:
        """Start delivering each of ``deliveries``; returns at once."""
        for delivery in deliveries:
            task = asyncio.get_running_loop().create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Give up on deliveries still running (the emulator is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        payload = delivery.payload.model_dump(mode="json")
        entry: dict[str, Any] = {"url": delivery.url, "payload": payload}
        try:
            async with httpx.AsyncClient(timeout=assumed.WEBHOOK_TIMEOUT) as client:
                answer = await client.post(delivery.url, json=payload)
            entry["status_code"] = answer.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        self._log.append(entry)
