"""Failure injection and request recording for the offline engine.

A :class:`FaultPlan` says which failures the engine injects (429 with ``Retry-After``, 500, 422
safety rejections, withheld images, latency, hangs); :func:`injected_fault` applies it to one
request. :class:`RecordedRequest` is what the engine keeps of every API request, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import hdrs, web

__all__ = [
    "SAFETY_MESSAGE",
    "SAFETY_TRIGGER",
    "Fault",
    "FaultPlan",
    "RecordedRequest",
    "injected_fault",
    "safety_rejects",
]

#: A prompt containing this word is always refused with 422, to trigger safety without a plan.
SAFETY_TRIGGER: Final = "unsafe-test"
#: The ``error`` text of a 422 safety rejection.
SAFETY_MESSAGE: Final = "Prompt failed the safety check."
_SAFETY_RE: Final = re.compile(rf"(?<![\w-]){re.escape(SAFETY_TRIGGER)}(?![\w-])", re.IGNORECASE)


@dataclass(slots=True)
class RecordedRequest:
    """One API request the engine received (image downloads are not recorded).

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: URL path without the query, e.g. ``"/v1/ideogram-v3/generate"``.
        headers: request headers, keys lower-cased (repeated headers joined with ``", "``).
        body: the raw request body.
        content_type: the full ``Content-Type`` header, boundary included (``""`` if absent).
        status: the HTTP status answered; 0 while the request is still being processed, 499
            when the client went away first.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    content_type: str
    status: int = 0

    @classmethod
    def arriving(cls, request: web.Request) -> RecordedRequest:
        """Return the record of ``request`` as it arrives: empty body, status 0."""
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            k = key.lower()
            headers[k] = f"{headers[k]}, {value}" if k in headers else value
        return cls(
            method=request.method,
            path=request.path,
            headers=headers,
            body=b"",
            content_type=request.headers.get(hdrs.CONTENT_TYPE, ""),
        )


@dataclass
class FaultPlan:
    """Failures to inject, all off by default. Mutable: change it between (or during) requests.

    Counters (``*_next``) are consumed one per API request, in this order: ``hang_next``,
    ``rate_limit_next`` / ``rate_limit_ratio``, ``server_error_next`` / ``server_error_ratio``;
    validation (400) comes after them, and ``safety_reject_next`` is consumed only by requests
    that passed validation. Ratios draw from ``random.Random(seed)``, so a plan with the same
    seed fails the same requests; assigning ``seed`` restarts that sequence.

    Attributes:
        rate_limit_next: answer the next N requests with 429 and a ``Retry-After`` header.
        retry_after_s: ``Retry-After`` value, seconds (sent as ``"1"`` or ``"0.5"``).
        rate_limit_ratio: probability 0..1 of a 429 on any request.
        server_error_next: answer the next N requests with 500.
        server_error_ratio: probability 0..1 of a 500 on any request.
        safety_reject_next: answer the next N valid requests with 422
            ``{"error": "Prompt failed the safety check."}``. (A prompt containing the word
            ``"unsafe-test"`` is always refused with that 422, whatever the plan.)
        withhold_indices: 0-based indices of images answered with ``is_image_safe: false`` and
            ``url: null`` (withheld by the safety filter; the real API still bills them).
        latency_s: seconds to sleep before answering any request.
        latency_jitter_s: plus ``uniform(0, latency_jitter_s)`` seconds.
        hang_next: the next N requests never answer: they wait until the client gives up or
            the engine closes (then 503).
        seed: seed of the random draws above.
    """

    rate_limit_next: int = 0
    retry_after_s: float = 1.0
    rate_limit_ratio: float = 0.0
    server_error_next: int = 0
    server_error_ratio: float = 0.0
    safety_reject_next: int = 0
    withhold_indices: set[int] = field(default_factory=set)
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    hang_next: int = 0
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        # Reseed whenever the seed is (re)assigned, including by __init__.
        if name == "seed":
            object.__setattr__(self, "_rng", random.Random(value))

    def take(self, counter: str) -> bool:
        """Consume one unit of the ``*_next`` counter named ``counter``; return if there was one."""
        left: int = getattr(self, counter)
        if left > 0:
            setattr(self, counter, left - 1)
            return True
        return False

    def chance(self, ratio: float) -> bool:
        """Return True with probability ``ratio`` (no draw at all when ``ratio <= 0``)."""
        return ratio > 0 and self._rng.random() < ratio

    def latency(self) -> float:
        """Return the delay, in seconds, to add before answering the next request."""
        jitter = self._rng.uniform(0, self.latency_jitter_s) if self.latency_jitter_s > 0 else 0
        return max(0.0, self.latency_s + jitter)


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected failure to answer with: ``{"error": message}`` with ``status``."""

    status: int
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


def _format_seconds(seconds: float) -> str:
    """Return ``seconds`` for ``Retry-After``: ``"2"`` for whole seconds, else ``"0.5"``."""
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


async def _pause(seconds: float, closing: asyncio.Event) -> None:
    """Sleep ``seconds``, or less if ``closing`` is set first."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), seconds)


async def injected_fault(plan: FaultPlan, closing: asyncio.Event) -> Fault | None:
    """Apply ``plan`` to one arriving request, before it is validated.

    Waits the plan's latency, then consumes its counters in order: a hang waits until
    ``closing`` is set and answers 503; then 429 (with ``Retry-After``), then 500.

    Returns:
        The failure to answer with, or None to go on with the request.
    """
    await _pause(plan.latency(), closing)
    if plan.take("hang_next"):
        await closing.wait()
        return Fault(503, "The offline Ideogram engine is shutting down.")
    if plan.take("rate_limit_next") or plan.chance(plan.rate_limit_ratio):
        retry_after = _format_seconds(plan.retry_after_s)
        return Fault(429, "Too many requests.", {hdrs.RETRY_AFTER: retry_after})
    if plan.take("server_error_next") or plan.chance(plan.server_error_ratio):
        return Fault(500, "Internal server error (injected by the offline engine).")
    return None


def safety_rejects(plan: FaultPlan, prompt: str | None) -> bool:
    """Return whether a valid request is refused with 422 :data:`SAFETY_MESSAGE`.

    Consumes one ``safety_reject_next``; otherwise refuses prompts with :data:`SAFETY_TRIGGER`.
    """
    return plan.take("safety_reject_next") or bool(prompt and _SAFETY_RE.search(prompt))
