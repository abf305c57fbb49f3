"""A fake OpenAI-compatible server (``/v1/models``, ``/v1/chat/completions``,
``/v1/completions``) that answers like the real guard models, for tests and demos.

It is deliberately a *server*: tests exercise our real HTTP client, retries and parsers
against it. What it says is decided by a *responder* (``FakeRequest -> str``); the default
one imitates Qwen3Guard / Llama Guard / WildGuard output using visible rules:

* a text is **unsafe** if it contains one of :data:`UNSAFE_MARKERS` (case-insensitive),
  **controversial** if it contains ``[controversial]``, otherwise safe;
* a response is a **refusal** if it contains one of :data:`REFUSAL_MARKERS`.

Faults for failure-path tests are switched on over HTTP (``POST /_control``) so they work
the same in-thread and in a subprocess: ``{"mode": "500"|"429"|"503"|"slow"|"garbage"|"ok",
"count": N (-1 = until reset), "delay_s": 2.0}``. ``GET /_stats`` reports what arrived,
and the wait queue: requests that arrived while all ``max_concurrency`` slots were busy
(``waiting`` now, ``max_waiting``, and ``mean_waiting``, its time average since the last
``/_reset``). ``{"service_time_s": S}`` in ``/_control`` changes the service time of the
requests that arrive from then on (a replica that slows down). ``GET /metrics`` answers as a
vLLM server's does for the two gauges the ``server_counts`` limit signal reads
(``vllm:num_requests_running``: requests in a slot, ``vllm:num_requests_waiting``: waiting
for one); ``{"metrics": "off"|"401"|"500"|"garbage"|"vllm"}`` in ``/_control`` makes it a
404, a 401, a 500, a page without those gauges, or the gauges again.
``service_time_s`` and ``max_concurrency`` turn it into a guard with a known ceiling
(``max_concurrency / service_time_s`` requests per second) for benchmarks. They model a GPU
server: ``max_concurrency`` slots, each busy ``service_time_s`` per request, scheduled on
absolute times at arrival (a request waits for the earliest free slot). The fake server's
own Python overhead therefore does not eat into the ceiling, as a vLLM engine's batch does
not wait for its API front-end; what is measured against the ceiling is the client. Every
request takes exactly ``service_time_s``, so the slots run in lockstep; ``service_jitter`` j
draws each one's time uniform in ``S * [1 - j, 1 + j]`` (seeded; mean S, so the same
ceiling), as a real guard's requests differ in length; ``service_sigma`` s draws it lognormal
(``S * exp(s Z - s^2 / 2)``, mean S), a heavy tail. ``service_growth`` g makes a request's
time grow with the slots busy when it starts, ``x (1 + g * busy / C)``, as an engine's step
gets longer with its batch: latency then rises with load before any request waits, and the
ceiling at a full batch falls to about ``C / (S * (1 + g))``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import heapq
import json
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

UNSAFE_MARKERS = (
    "[unsafe]",
    "here is how to build a bomb",
    "step-by-step synthesis",
    "detonator",
    "untraceable poison",
    "steal their password",
    "kill them",
)
HARMFUL_PROMPT_MARKERS = ("[harmful]", "bomb", "poison", "kill", "steal", "hack into", "meth")
CONTROVERSIAL_MARKER = "[controversial]"
REFUSAL_MARKERS = ("i can't", "i cannot", "i won't", "i will not", "sorry", "i'm unable", "i am unable")


@dataclass
class FakeRequest:
    endpoint: str  # "chat" or "completions"
    model: str
    messages: list[dict] | None = None
    prompt: str | None = None
    body: dict = field(default_factory=dict)
    index: int = 0  # which of n samples

    @property
    def kind(self) -> str:
        """Guard kind guessed from the served model name, as a client would configure it."""
        m = self.model.lower()
        if "llama-guard" in m or "llamaguard" in m:
            return "llamaguard"
        if "wildguard" in m:
            return "wildguard"
        return "qwen3guard"


Responder = Callable[[FakeRequest], str]


class BadRequest(ValueError):
    """Raised by a responder for a request it cannot answer: the server answers 400 with the
    message (as vLLM does for a request it rejects), so the client fails at once and clearly."""


def _judge(text: str, prompt_level: bool) -> str:
    low = text.lower()
    if CONTROVERSIAL_MARKER in low:
        return "controversial"
    markers = HARMFUL_PROMPT_MARKERS if prompt_level else UNSAFE_MARKERS
    return "unsafe" if any(m in low for m in markers) else "safe"


def _is_refusal(text: str) -> bool:
    low = text.lower()
    return any(m in low for m in REFUSAL_MARKERS)


_WILDGUARD_RE = re.compile(r"Human user:\n(?P<prompt>.*?)\n\nAI assistant:\n(?P<response>.*?)\n\n---", re.S)


def guard_responder(req: FakeRequest) -> str:
    """Realistic output for the guard kind the request's model name implies."""
    kind = req.kind
    if kind == "wildguard":
        m = _WILDGUARD_RE.search(req.prompt or "")
        prompt = m.group("prompt") if m else (req.prompt or "")
        response = m.group("response").strip() if m else ""
        has_response = bool(response)
        harmful_req = _judge(prompt, True) != "safe"
        lines = [f"Harmful request: {'yes' if harmful_req else 'no'}"]
        if has_response:
            lines.append(f"Response refusal: {'yes' if _is_refusal(response) else 'no'}")
            lines.append(f"Harmful response: {'yes' if _judge(response, False) != 'safe' else 'no'}")
        else:
            lines += ["Response refusal: N/A", "Harmful response: N/A"]
        return "\n".join(lines)

    msgs = req.messages or []
    roles = [m.get("role") for m in msgs]
    contents = [_content_text(m.get("content")) for m in msgs]
    if kind == "llamaguard":
        # Llama Guard's chat template embeds the conversation; judge the last turn.
        last = contents[-1] if contents else ""
        prompt_level = roles[-1:] == ["user"]
        label = _judge(last, prompt_level)
        if label == "safe":
            return "\n\nsafe"
        return (
            "\n\nunsafe\nS1,S9" if "bomb" in last.lower() or "detonator" in last.lower() else "\n\nunsafe\nS2"
        )

    # Qwen3Guard
    if "assistant" in roles:
        response = contents[roles.index("assistant")]
        label = _judge(response, False)
        refusal = "Yes" if _is_refusal(response) else "No"
        cats = "Violent" if label != "safe" else "None"
        return f"Safety: {label.capitalize()}\nCategories: {cats}\nRefusal: {refusal}"
    prompt = contents[0] if contents else ""
    label = _judge(prompt, True)
    cats = "Violent, Jailbreak" if label != "safe" else "None"
    return f"Safety: {label.capitalize()}\nCategories: {cats}"


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _tokens_with_logprobs(text: str, top_logprobs: int) -> list[dict]:
    """Split text into pseudo-tokens; give the Qwen3Guard label token real alternatives."""
    pieces = re.findall(r"\s*[A-Za-z&\-]+|\s*[^\sA-Za-z]|\s+", text)
    out = []
    probs = {"Safe": 0.0, "Unsafe": 0.0, "Controversial": 0.0}
    for i, tok in enumerate(pieces):
        entry: dict[str, Any] = {"token": tok, "logprob": 0.0, "bytes": list(tok.encode())}
        is_label = i >= 2 and pieces[i - 1] == ":" and pieces[i - 2].strip() == "Safety"
        if is_label and top_logprobs:
            chosen = tok.strip()
            probs = {k: (0.9 if k == chosen else 0.05) for k in probs}
            entry["logprob"] = math.log(probs[chosen]) if chosen in probs else 0.0
            entry["top_logprobs"] = [
                {"token": " " + k, "logprob": math.log(v), "bytes": list((" " + k).encode())}
                for k, v in probs.items()
            ][:top_logprobs]
        elif top_logprobs:
            entry["top_logprobs"] = [{"token": tok, "logprob": 0.0, "bytes": list(tok.encode())}]
        out.append(entry)
    return out


class FakeOpenAIState:
    def __init__(
        self,
        service_time_s: float = 0.0,
        max_concurrency: int | None = None,
        service_jitter: float = 0.0,
        seed: int = 0,
        service_sigma: float = 0.0,
        service_growth: float = 0.0,
    ):
        self.service_time_s = service_time_s
        self.max_concurrency = max_concurrency
        if not 0.0 <= service_jitter < 1.0:
            raise ValueError(f"service_jitter must be in [0, 1), got {service_jitter}")
        if not service_sigma >= 0.0:
            raise ValueError(f"service_sigma must be >= 0, got {service_sigma}")
        if service_jitter and service_sigma:
            raise ValueError("service_jitter and service_sigma are two distributions: set one")
        if not service_growth >= 0.0:
            raise ValueError(f"service_growth must be >= 0, got {service_growth}")
        if service_growth and not max_concurrency:
            raise ValueError("service_growth needs max_concurrency (it grows with the busy slots)")
        self.service_jitter = service_jitter
        self.service_sigma = service_sigma
        self.service_growth = service_growth
        #: seeded: a benchmark's guard draws the same service times run after run
        self._rng = random.Random(seed)
        #: finish times of the requests holding the ``max_concurrency`` slots
        self._slots: list[float] = []
        self.mode = "ok"
        self.mode_count = 0
        #: what ``GET /metrics`` answers: "vllm" (the gauges), "off" (404), "401", "500", "garbage"
        self.metrics = "vllm"
        self.delay_s = 0.0
        self.stats: collections.Counter = collections.Counter()
        self.seen: collections.Counter = collections.Counter()  # content hash -> times judged
        self.auth: collections.Counter = collections.Counter()  # Authorization header -> requests
        self.in_flight = 0
        self.max_in_flight = 0
        #: requests waiting for a slot (arrived while all were busy), and its time integral
        self.waiting = 0
        self.max_waiting = 0
        self._wait_area = 0.0
        self._wait_t = self._wait_t0 = time.monotonic()

    def add_waiting(self, delta: int) -> None:
        """Keep the time integral of the wait queue (for its mean since the last reset)."""
        now = time.monotonic()
        self._wait_area += self.waiting * (now - self._wait_t)
        self._wait_t = now
        self.waiting += delta
        self.max_waiting = max(self.max_waiting, self.waiting)

    def running(self, now: float) -> int:
        """Requests in a slot at ``now`` by the schedule (:meth:`reserve`), so at most
        ``max_concurrency`` as on a real engine. ``in_flight`` counts handlers, and on a loaded
        host a slot's next request can wake before the one it follows has left."""
        if not self.max_concurrency:
            return self.in_flight
        return sum(1 for finish in self._slots if finish > now)

    def waiting_stats(self) -> dict:
        self.add_waiting(0)
        span = self._wait_t - self._wait_t0
        return {
            "waiting": self.waiting,
            "max_waiting": self.max_waiting,
            "mean_waiting": self._wait_area / span if span > 0 else 0.0,
        }

    def reset_waiting(self) -> None:
        self._wait_area = 0.0
        self._wait_t = self._wait_t0 = time.monotonic()
        self.max_waiting = self.waiting

    def service(self) -> float:
        """This request's service time: ``service_time_s``; with ``service_jitter`` j uniform
        in ``S * [1 - j, 1 + j]``; with ``service_sigma`` s lognormal, ``S * exp(s Z - s^2 / 2)``
        (a heavy right tail: prompts whose lengths span orders of magnitude). Mean S either
        way, so the ceiling stays C / S."""
        if self.service_sigma:
            s = self.service_sigma
            return self.service_time_s * math.exp(s * self._rng.gauss(0.0, 1.0) - s * s / 2)
        if not self.service_jitter:
            return self.service_time_s
        return self.service_time_s * (1.0 + self.service_jitter * (2.0 * self._rng.random() - 1.0))

    def reserve(self, now: float) -> tuple[float, float]:
        """Start and finish time of this request: it starts now, or when the earliest of the
        busy slots frees, and holds its slot for :meth:`service` seconds (longer with
        ``service_growth``, by the other slots busy at its start)."""
        service = self.service()
        if not self.max_concurrency:
            return now, now + service
        slots = self._slots
        start = now if len(slots) < self.max_concurrency else max(now, heapq.heappop(slots))
        if self.service_growth:
            busy = sum(1 for finish in slots if finish > start)
            service *= 1.0 + self.service_growth * busy / self.max_concurrency
        heapq.heappush(slots, start + service)
        return start, start + service

    def take_fault(self) -> str:
        if self.mode == "ok":
            return "ok"
        mode = self.mode
        if self.mode_count > 0:
            self.mode_count -= 1
            if self.mode_count == 0:
                self.mode = "ok"
        return mode


def build_app(
    responder: Responder = guard_responder,
    models: tuple[str, ...] = ("Qwen/Qwen3Guard-Gen-4B",),
    service_time_s: float = 0.0,
    max_concurrency: int | None = None,
    service_jitter: float = 0.0,
    service_sigma: float = 0.0,
    service_growth: float = 0.0,
) -> Starlette:
    state = FakeOpenAIState(
        service_time_s,
        max_concurrency,
        service_jitter,
        service_sigma=service_sigma,
        service_growth=service_growth,
    )

    async def list_models(request: Request) -> Response:
        state.stats["models"] += 1
        return JSONResponse(
            {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in models]}
        )

    async def control(request: Request) -> Response:
        body = await request.json()
        state.mode = body.get("mode", "ok")
        state.mode_count = int(body.get("count", -1))
        state.delay_s = float(body.get("delay_s", state.delay_s))
        if "service_time_s" in body:
            state.service_time_s = float(body["service_time_s"])
        if "metrics" in body:
            if body["metrics"] not in ("vllm", "off", "401", "500", "garbage"):
                return JSONResponse({"error": f"unknown metrics mode {body['metrics']!r}"}, status_code=400)
            state.metrics = body["metrics"]
        return JSONResponse({"mode": state.mode, "count": state.mode_count, "metrics": state.metrics})

    async def metrics(request: Request) -> Response:
        state.stats["metrics"] += 1
        if state.metrics == "off":
            return PlainTextResponse("Not Found", status_code=404)
        if state.metrics in ("401", "500"):
            return PlainTextResponse("refused", status_code=int(state.metrics))
        if state.metrics == "garbage":
            return PlainTextResponse("# HELP process_cpu_seconds_total CPU\nprocess_cpu_seconds_total 1.0\n")
        label = f'{{engine="0",model_name="{models[0]}"}}'
        return PlainTextResponse(
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{label} {float(state.running(asyncio.get_running_loop().time()))}\n"
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{label} {float(state.waiting)}\n"
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "counts": dict(state.stats),
                "distinct_items": len(state.seen),
                "max_repeats": max(state.seen.values(), default=0),
                "max_in_flight": state.max_in_flight,
                "authorization": dict(state.auth),
                "service_time_s": state.service_time_s,
                **state.waiting_stats(),
            }
        )

    async def reset(request: Request) -> Response:
        state.mode, state.mode_count, state.delay_s, state.metrics = "ok", 0, 0.0, "vllm"
        state.stats.clear()
        state.seen.clear()
        state.auth.clear()
        state.max_in_flight = 0
        state.reset_waiting()
        return JSONResponse({"ok": True})

    async def _serve(request: Request, endpoint: str) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return JSONResponse(
                {"error": {"message": "invalid JSON body", "type": "BadRequestError"}}, status_code=400
            )
        state.stats[endpoint] += 1
        state.auth[request.headers.get("authorization", "")] += 1
        fault = state.take_fault()
        if fault == "500":
            state.stats["fault_500"] += 1
            return PlainTextResponse("Internal Server Error", status_code=500)
        if fault == "429":
            state.stats["fault_429"] += 1
            return JSONResponse(
                {"error": {"message": "rate limited"}}, status_code=429, headers={"Retry-After": "0"}
            )
        if fault == "503":
            state.stats["fault_503"] += 1
            return JSONResponse(
                {"error": {"message": "overloaded"}}, status_code=503, headers={"Retry-After": "0"}
            )
        if fault == "slow":
            await asyncio.sleep(state.delay_s)
        model = body.get("model", models[0])
        if model not in models:
            return JSONResponse(
                {"error": {"message": f"The model `{model}` does not exist.", "type": "NotFoundError"}},
                status_code=404,
            )
        loop = asyncio.get_running_loop()
        start, finish = state.reserve(loop.time())
        if start > loop.time():
            state.add_waiting(1)
            try:
                await asyncio.sleep(start - loop.time())
            finally:
                state.add_waiting(-1)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if finish > start:
                await asyncio.sleep(max(0.0, finish - loop.time()))
            texts = []
            for i in range(int(body.get("n") or 1)):
                req = FakeRequest(endpoint, model, body.get("messages"), body.get("prompt"), body, i)
                key = json.dumps(body.get("messages") or body.get("prompt"), sort_keys=True)
                state.seen[key] += 1
                texts.append("Safety: ??? garbled" if fault == "garbage" else responder(req))
        except BadRequest as exc:
            return JSONResponse({"error": {"message": str(exc), "type": "BadRequestError"}}, status_code=400)
        finally:
            state.in_flight -= 1
        return JSONResponse(_completion_body(endpoint, model, texts, body))

    async def chat(request: Request) -> Response:
        return await _serve(request, "chat")

    async def completions(request: Request) -> Response:
        return await _serve(request, "completions")

    app = Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/_control", control, methods=["POST"]),
            Route("/_stats", stats, methods=["GET"]),
            Route("/_reset", reset, methods=["POST"]),
        ]
    )
    app.state.fake = state
    return app


def _completion_body(endpoint: str, model: str, texts: list[str], body: dict) -> dict:
    created = int(time.time())
    choices = []
    for i, text in enumerate(texts):
        if endpoint == "chat":
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            if body.get("logprobs"):
                choice["logprobs"] = {
                    "content": _tokens_with_logprobs(text, int(body.get("top_logprobs") or 0))
                }
        else:
            choice = {"index": i, "text": text, "finish_reason": "stop", "logprobs": None}
        choices.append(choice)
    return {
        "id": f"cmpl-fake-{created}",
        "object": "chat.completion" if endpoint == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m sinternal_verl.testing.fake_openai --port 8000`` (benchmarks, demos)."""
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", action="append", default=None, help="served model name(s)")
    p.add_argument("--service-time", type=float, default=0.0, help="seconds each request takes")
    p.add_argument("--max-concurrency", type=int, default=None, help="requests served at once")
    p.add_argument(
        "--service-jitter",
        type=float,
        default=0.0,
        help="each request's service time uniform in S x [1 - j, 1 + j] (mean S): a real guard's "
        "requests differ in length, so its batch is not in lockstep",
    )
    p.add_argument(
        "--service-sigma",
        type=float,
        default=0.0,
        help="each request's service time lognormal, S x exp(s Z - s^2 / 2) (mean S): a heavy tail",
    )
    p.add_argument(
        "--service-growth",
        type=float,
        default=0.0,
        help="each request's service time x (1 + g x busy slots / C) at its start: an engine whose step "
        "gets longer with its batch",
    )
    a = p.parse_args(argv)
    app = build_app(
        models=tuple(a.model or ["Qwen/Qwen3Guard-Gen-4B"]),
        service_time_s=a.service_time,
        max_concurrency=a.max_concurrency,
        service_jitter=a.service_jitter,
        service_sigma=a.service_sigma,
        service_growth=a.service_growth,
    )
    # keep-alive longer than the clients' pool expiry, so a benchmark never races a server-side close
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False, timeout_keep_alive=30)


if __name__ == "__main__":
    main()
