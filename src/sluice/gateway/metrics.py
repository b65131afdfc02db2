"""Prometheus metrics observed on the gateway's message path.

One `GatewayMetrics` per process (`METRICS`), in its own CollectorRegistry rather than
prometheus-client's global one: the web app serves it at /metrics next to the figures it
reads from the database at scrape time, and tests may build their own instance without
colliding with names registered elsewhere. Observing is a few dictionary updates under a
lock, cheap enough for the hot path; nothing here touches the database.

Counters only go up while the process lives; Prometheus' rate() handles restarts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from sluice.gateway.pipeline import FAIL_OPEN_RULE
from sluice.gateway.store import MessageFacts

#: Relay latency buckets (seconds): a pooled local hand-off takes milliseconds, a remote
#: smarthost up to seconds; past 30 s something is wrong.
RELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0, 30.0, 60.0)


class GatewayMetrics:
    """The gateway's counters and the relay-latency histogram, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "sluice_messages_received", "Messages recorded by the gateway, per protocol",
            ["protocol"], registry=self.registry)
        self.decisions = Counter(
            "sluice_decisions", "Per-recipient routing decisions, per action and mode "
            "(audit: decided, not applied)", ["action", "mode"], registry=self.registry)
        self.recipients = Counter(
            "sluice_recipients", "Recipient outcomes per status "
            "(delivered, diverted, deferred, rejected, duplicate)", ["status"],
            registry=self.registry)
        self.fail_open = Counter(
            "sluice_fail_open_messages", "Messages relayed unchanged because parsing, the "
            "pipeline hook or preparing the posts failed", registry=self.registry)
        self.replies = Counter(
            "sluice_replies", "Replies to clients at the end of DATA, per class (2xx, 4xx, "
            "5xx); LMTP counts one per recipient", ["code_class"], registry=self.registry)
        self.storage_errors = Counter(
            "sluice_storage_errors", "Times the database could not be read or written on "
            "the message path", registry=self.registry)
        self.relay_seconds = Histogram(
            "sluice_relay_seconds", "Time to hand a message to the upstream server (or the "
            "local maildirs)", buckets=RELAY_BUCKETS, registry=self.registry)

        #: Labelled children by metric and label values: `labels()` takes a lock and
        #: builds keys on every call, and this runs for every message and recipient.
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Counter, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_message(self, facts: MessageFacts) -> None:
        """One message's recorded facts: protocol, decisions, outcomes, fail-open."""
        self._child(self.messages, str(facts.message.get("source", "smtp"))).inc()
        fail_open = False
        for outcome in facts.outcomes:
            self._child(self.decisions, outcome.action, outcome.mode).inc()
            self._child(self.recipients, outcome.status).inc()
            fail_open = fail_open or outcome.rule == FAIL_OPEN_RULE
        if fail_open:
            self.fail_open.inc()

    def observe_replies(self, replies: Iterable[str]) -> None:
        """The reply lines sent to the client ("250 2.0.0 OK", "451 …")."""
        for reply in replies:
            first = reply[:1]
            self._child(self.replies, f"{first}xx" if first.isdigit() else "other").inc()

    def observe_storage_error(self) -> None:
        self.storage_errors.inc()

    @contextmanager
    def relay_timer(self) -> Iterator[None]:
        """Times the block (one hand-off to the deliverer), failed ones too."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.relay_seconds.observe(time.perf_counter() - started)


#: This process's gateway metrics.
METRICS = GatewayMetrics()
