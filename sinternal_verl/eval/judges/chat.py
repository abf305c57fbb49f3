"""One OpenAI-compatible chat call for the LLM-based judges, through the project's shared
retrying transport (load spread over replicas, backoff, Retry-After)."""

from __future__ import annotations

import asyncio
import os

from ...guards.http import HTTPClientConfig, OpenAIHTTPClient
from ...settings import ConfigError


class ChatJudgeClient:
    def __init__(
        self,
        urls: list[str],
        model: str,
        api_key_env: str | None,
        max_concurrency: int,
        timeout_s: float,
        max_retries: int,
        what: str,
    ):
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ConfigError(f"{what}.api_key_env names env var {api_key_env!r}, which is not set")
        self.model = model
        self.http = OpenAIHTTPClient(
            HTTPClientConfig(
                urls=tuple(urls),
                api_key=api_key,
                max_concurrency_per_url=max_concurrency,
                timeout_s=timeout_s,
                max_retries=max_retries,
            )
        )
        self.sem = asyncio.Semaphore(max_concurrency)

    async def ask(self, messages: list[dict], max_tokens: int) -> str:
        payload = {"model": self.model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens}
        async with self.sem:
            body = await self.http.post_json("/v1/chat/completions", payload)
        try:
            return body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ValueError(
                f"judge answered without choices[0].message.content: {str(body)[:200]}"
            ) from None

    async def aclose(self) -> None:
        await self.http.aclose()


def urls_of(base_url: str | list[str] | None) -> list[str]:
    if not base_url:
        return []
    return [base_url] if isinstance(base_url, str) else list(base_url)


class ChatJudge:
    """Base of the judges that ask a served model: builds the client from the judge's settings
    (``base_url``, ``model``, ``api_key_env``, ``max_concurrency``, ``timeout_s``,
    ``max_retries``) on first use, judges items concurrently, closes the client. A subclass
    names its config section (``what``) and judges one item (``_one``)."""

    what: str = "judge"

    def __init__(self, settings):
        self.settings = settings
        self._client: ChatJudgeClient | None = None

    async def _one(self, i):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    async def judge(self, inputs):
        if self._client is None:
            s = self.settings
            self._client = ChatJudgeClient(
                urls_of(s.base_url),
                s.model or "",
                s.api_key_env,
                s.max_concurrency,
                s.timeout_s,
                s.max_retries,
                self.what,
            )
        return list(await asyncio.gather(*[self._one(i) for i in inputs]))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
