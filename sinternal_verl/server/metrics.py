"""Prometheus metrics of one server instance.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (tests and Ray Serve
replicas build several apps in one process; the global registry would refuse duplicates).
The guard backend's own counters (requests, retries, errors, cache and dedup hits,
in-flight) are read from ``guard.stats`` at scrape time, so there is one source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sinternal_verl.guards.types import Guard

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def guard_stats_dict(guard: Guard) -> dict[str, float]:
    """Numeric counters of a guard backend: the guard protocol's ``stats()``, one flat mapping."""
    return {k: float(v) for k, v in guard.stats().items() if isinstance(v, (int, float))}


class _GuardCollector(Collector):
    """``redact``: per-upstream figures are labelled by position (``upstream="0"``) instead
    of URL, for a ``/metrics`` anyone can read (no api key set)."""

    def __init__(self, guard_getter: Callable[[], Any], redact: bool = False):
        self._guard_getter = guard_getter
        self._redact = redact

    def collect(self) -> Iterable:
        guard = self._guard_getter()
        if guard is None:
            return
        families: dict[str, Any] = {}
        upstreams: dict[str, str] = {}
        for key, value in sorted(guard_stats_dict(guard).items()):
            name, _, label = key.partition("{")  # per-upstream figures come as "name{url}"
            metric = "sinternal_guard_" + re.sub(r"[^a-zA-Z0-9_]", "_", name).removesuffix("_total")
            if label:
                metric += "_per_upstream"
            fam = families.get(metric)
            if fam is None:
                gauge = any(w in name for w in ("in_flight", "waiting", "limit", "latency")) or name.endswith(
                    ("_size", "_max", "_current", "_bytes")
                )
                cls = GaugeMetricFamily if gauge else CounterMetricFamily
                fam = families[metric] = cls(
                    metric, f"guard backend: {name}", labels=["upstream"] if label else None
                )
            if label:
                label = label.rstrip("}")
                if self._redact:
                    label = upstreams.setdefault(label, str(len(upstreams)))
            fam.add_metric([label] if label else [], value)
        yield from families.values()


class ServerMetrics:
    def __init__(self, guard_getter: Callable[[], Any], redact_upstreams: bool = False):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sinternal_server_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.items = Counter(
            "sinternal_server_items",
            "items by route and outcome (ok, fallback: scored without the guard, error)",
            ["route", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "sinternal_server_request_latency_seconds",
            "request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.item_latency = Histogram(
            "sinternal_server_item_latency_seconds",
            "latency of one item's reward",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "sinternal_server_requests_in_flight", "scoring requests being worked on", registry=r
        )
        self.queued = Gauge(
            "sinternal_server_requests_queued", "scoring requests waiting for a slot", registry=r
        )
        self.rejected = Counter("sinternal_server_rejected", "requests answered 429 (queue full)", registry=r)
        self.guard_unavailable = Counter(
            "sinternal_server_guard_unavailable",
            "requests answered 503 because the guard was unavailable",
            registry=r,
        )
        self.deadline_exceeded = Counter(
            "sinternal_server_deadline_exceeded",
            "requests answered 503 because request_timeout_s passed",
            registry=r,
        )
        self.client_disconnects = Counter(
            "sinternal_server_client_disconnects",
            "requests whose client left before the answer (work cancelled)",
            registry=r,
        )
        self.shutdown_rejected = Counter(
            "sinternal_server_shutdown_rejected",
            "requests answered 503 because the server was shutting down",
            registry=r,
        )
        self.exceptions = Counter(
            "sinternal_server_exceptions",
            "unexpected exceptions answered 500 (a bug: see the log)",
            ["route"],
            registry=r,
        )
        r.register(_GuardCollector(guard_getter, redact_upstreams))
