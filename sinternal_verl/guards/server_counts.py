"""A serving engine's own request counts, read from its Prometheus ``/metrics``.

Why: the adaptive limiter steers by latency, which every server has, but latency only says
*that* a server queues. vLLM and SGLang also publish how many requests are in their running
batch and how many wait for it. Every client of one server reads the same two numbers, which
is what lets the limiter's ``server_counts`` signal give the clients of one server equal
shares within a few round trips (:meth:`.limiter.AdaptiveLimit.observe_upstream`).

Only the two gauges are read, by a scan of the exposition text rather than a full parse:
vLLM's ``/metrics`` is tens of kilobytes of histograms, read many times a second.
"""

from __future__ import annotations

import math

__all__ = ["RUNNING", "WAITING", "parse_server_counts"]

#: gauges of requests in the engine's running batch (vLLM, SGLang)
RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs")
#: gauges of requests waiting for the batch (vLLM, SGLang)
WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs")
_PREFIXES = tuple({name.split(":")[0] + ":" for name in RUNNING + WAITING})


def _sample(line: str) -> tuple[str, float] | None:
    """``name{labels} value [timestamp]`` -> (name, value); None for anything else."""
    brace = line.find("{")
    if brace >= 0:
        name = line[:brace]
        close = line.rfind("}")
        rest = line[close + 1 :].split() if close > brace else []
    else:
        name, *rest = line.split()
    if not rest:
        return None
    try:
        value = float(rest[0])
    except ValueError:
        return None
    return (name, value) if math.isfinite(value) else None


def parse_server_counts(text: str) -> tuple[int, int] | None:
    """(running, waiting) from a Prometheus exposition text, each summed over its label sets
    (a data-parallel vLLM publishes one per engine); ``None`` when neither engine's running
    or waiting gauge is there (not a vLLM or SGLang server, or its metrics are off)."""
    running = waiting = 0.0
    seen_running = seen_waiting = False
    for line in text.splitlines():
        if not line.startswith(_PREFIXES):
            continue
        sample = _sample(line)
        if sample is None:
            continue
        name, value = sample
        if name in RUNNING:
            running += value
            seen_running = True
        elif name in WAITING:
            waiting += value
            seen_waiting = True
    if not (seen_running and seen_waiting):
        return None
    return max(0, round(running)), max(0, round(waiting))
