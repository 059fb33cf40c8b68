"""The openai backend: any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp, Ollama, OpenAI, ``seqrec serve``).

Requests of a batch go out concurrently through the SDK's async client, at most ``max_concurrency`` at a time.
The SDK's own retries are off so that every retry is counted here: connection errors and timeouts, 408, 409, 429
and 5xx, bodies that are not JSON and answers without choices are retried with exponential backoff (or after the
server's Retry-After) up to ``max_retries`` times, then returned as a :class:`CallFailure`. Answers that retrying
cannot change (a refused key, an unknown model) stop the whole batch with one :class:`SeqrecError` line.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from seqrec.errors import SeqrecError
from seqrec.llm.backends.options import ENDPOINT_DEFAULTS
from seqrec.llm.backends.base import (
    Backend,
    CallFailure,
    Capabilities,
    Decoding,
    Generation,
    Prompt,
    Scores,
    TokenLogprob,
    check_labels,
    check_prompt,
)

RETRIED_STATUSES = {408, 409, 429}
CAPABILITY_NAMES = ("generate", "score", "chat")
SCORE_FLOOR = -100.0  # a label outside the endpoint's top-N ranks below every label it did list
TOP_LOGPROBS = 20  # the most alternatives OpenAI and vLLM return by default


class Retryable(Exception):
    """An answer that another attempt may fix: what went wrong, its status and the server's Retry-After."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


def endpoint_identity(base_url: str, model: str) -> str:
    """What an endpoint's answers depend on besides the request: the server and the model it serves."""
    return f"{base_url.rstrip('/')}#{model}"


def run_sync(coroutine):
    """Run a coroutine to the end from plain code, also when the caller already runs an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def retry_after_seconds(headers) -> float | None:
    """The server's Retry-After (``retry-after-ms``, seconds, or an HTTP date), if it sent one."""
    if headers is None:
        return None
    if (value := headers.get("retry-after-ms")) is not None:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # a Retry-After we cannot read: fall back to our own backoff
    return max(0.0, moment.timestamp() - time.time())


def endpoint_identity(base_url: str, model: str) -> str:
    """What an endpoint's answers depend on besides the request: the server and the model it serves."""
    return f"{base_url.rstrip('/')}#{model}"


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None,
                 max_concurrency: int = ENDPOINT_DEFAULTS["max_concurrency"],
                 timeout: float = ENDPOINT_DEFAULTS["timeout"], max_retries: int = ENDPOINT_DEFAULTS["max_retries"],
                 capabilities: dict[str, bool] | None = None, backoff: float = 0.5, max_backoff: float = 30.0,
                 top_logprobs: int = TOP_LOGPROBS, score_floor: float = SCORE_FLOOR, check: bool = True):
        if max_concurrency < 1 or timeout <= 0 or max_retries < 0:
            raise SeqrecError(f"endpoint {base_url}: max_concurrency must be >= 1, timeout > 0 and max_retries >= 0 "
                              f"(got {max_concurrency}, {timeout}, {max_retries})")
        unknown = set(capabilities or {}) - set(CAPABILITY_NAMES)
        if unknown:
            raise SeqrecError(f"endpoint {base_url}: unknown capabilities {sorted(unknown)}; "
                              f"known: {', '.join(CAPABILITY_NAMES)}")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.api_key_env = api_key_env
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.top_logprobs, self.score_floor = top_logprobs, score_floor
        self.overrides = dict(capabilities or {})
        self.probed_score: bool | None = None
        self.api_key()  # a missing key variable is reported now, before any request
        if check:
            run_sync(self.check_endpoint())

    def api_key(self) -> str:
        """Read from the environment on every use and kept nowhere else; servers without keys get a placeholder."""
        if self.api_key_env is None:
            return "none"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise SeqrecError(f"endpoint {self.base_url}: the environment variable {self.api_key_env} (api_key_env) "
                              f"that holds its API key is not set")
        return key

    @property
    def identity(self) -> str:
        return endpoint_identity(self.base_url, self.model)

    @property
    def score_options(self) -> dict:
        return {"top_logprobs": self.top_logprobs, "score_floor": self.score_floor}

    @property
    def capabilities(self) -> Capabilities:
        score = self.overrides.get("score")
        if score is None:
            if self.probed_score is None:
                self.probed_score = run_sync(self.probe_score())
            score = self.probed_score
        return Capabilities(generate=self.overrides.get("generate", True), score=score,
                            chat=self.overrides.get("chat", True))

    # the client and one request with its retries ----------------------------------------------------------
    def client(self):
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.base_url, api_key=self.api_key(), timeout=self.timeout, max_retries=0)

    def refused(self, exc) -> SeqrecError:
        status = exc.status_code
        if status in (401, 403):
            where = f"check {self.api_key_env}" if self.api_key_env else "set api_key_env to the variable holding it"
            return SeqrecError(f"endpoint {self.base_url} refused the API key ({status}); {where}")
        return SeqrecError(f"endpoint {self.base_url} does not serve model {self.model!r} ({status}: "
                           f"{error_message(exc)})")

    async def attempt(self, request: Callable[[], Awaitable], needs_choices: bool = True):
        """One request: its answer, or Retryable, or SeqrecError for a refused key or an unknown model."""
        import openai

        try:
            response = await request()
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status in (401, 403) or (status == 404 and "model" in error_message(exc).lower()):
                raise self.refused(exc) from None
            if status in RETRIED_STATUSES or status >= 500:
                raise Retryable(f"{status}: {error_message(exc)}", status, retry_after_seconds(exc.response.headers))
            return CallFailure(error=f"{status}: {error_message(exc)}", attempts=1, status=status)
        except openai.APITimeoutError:
            raise Retryable(f"no answer within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise Retryable(f"connection error: {exc.__cause__ or exc}") from None
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise Retryable(f"the answer was not valid JSON ({type(exc).__name__})") from None
        if isinstance(response, str):
            raise Retryable("the answer was not JSON")
        if needs_choices and not getattr(response, "choices", None):
            raise Retryable("the answer had no choices")
        return response

    async def with_retries(self, request: Callable[[], Awaitable], gate: asyncio.Semaphore,
                           needs_choices: bool = True):
        """(answer, attempts) or a CallFailure once ``max_retries`` retries are spent."""
        for attempt in range(1, self.max_retries + 2):
            try:
                async with gate:
                    answer = await self.attempt(request, needs_choices)
            except Retryable as problem:
                if attempt > self.max_retries:
                    return CallFailure(error=str(problem), attempts=attempt, status=problem.status)
                delay = problem.retry_after
                if delay is None:
                    delay = self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)
                await asyncio.sleep(min(delay, self.max_backoff))
                continue
            if isinstance(answer, CallFailure):
                return CallFailure(error=answer.error, attempts=attempt, status=answer.status)
            return answer, attempt
        raise AssertionError("unreachable: the loop returns on its last attempt")

    async def batch(self, prompts: Sequence[Prompt], send, parse) -> list:
        gate = asyncio.Semaphore(self.max_concurrency)
        async with self.client() as client:
            async def one(prompt):
                started = time.perf_counter()
                outcome = await self.with_retries(lambda: send(client, prompt), gate)
                if isinstance(outcome, CallFailure):
                    return replace(outcome, latency_s=time.perf_counter() - started)
                response, attempts = outcome
                try:
                    result = parse(response, attempts)
                except (AttributeError, IndexError, KeyError, TypeError) as exc:
                    result = CallFailure(error=f"unexpected answer shape ({type(exc).__name__}: {exc})",
                                         attempts=attempts)
                return replace(result, latency_s=time.perf_counter() - started)
            return await asyncio.gather(*(one(prompt) for prompt in prompts))

    # checks -----------------------------------------------------------------------------------------------
    async def check_endpoint(self) -> None:
        """Reachable, the key accepted, the model served: each checked once, each failure one clear line."""
        import openai

        gate = asyncio.Semaphore(1)
        async with self.client() as client:
            async def listing():
                try:
                    return [model.id for model in (await client.models.list()).data]
                except openai.NotFoundError:
                    return None  # a server without /models: the first request tells whether the model exists

            outcome = await self.with_retries(listing, gate, needs_choices=False)
        if isinstance(outcome, CallFailure):
            raise SeqrecError(f"cannot reach the endpoint {self.base_url} ({outcome.error}, {outcome.attempts} "
                              f"attempts); is the server running and the URL right?")
        served = outcome[0]
        if served is not None and self.model not in served:
            raise SeqrecError(f"endpoint {self.base_url} does not serve model {self.model!r}; it serves: "
                              f"{', '.join(served) or 'nothing'}")

    async def probe_score(self) -> bool:
        """One request asking for the next token's top log-probs: does this endpoint return them?"""
        import openai

        async with self.client() as client:
            for send in (lambda: client.chat.completions.create(
                                model=self.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=1,
                                temperature=0, logprobs=True, top_logprobs=2),
                         lambda: client.completions.create(model=self.model, prompt="Hi", max_tokens=1,
                                                           temperature=0, logprobs=2)):
                try:
                    if top_alternatives(await send()):
                        return True
                except (openai.APIError, AttributeError, IndexError, TypeError, ValueError):
                    continue
        return False

    # the two operations -----------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], decoding: Decoding) -> list[Generation | CallFailure]:
        prompts = [check_prompt(prompt) for prompt in prompts]
        options = {"model": self.model, "max_tokens": decoding.max_tokens, "temperature": decoding.temperature,
                   "top_p": decoding.top_p}
        if decoding.seed is not None:
            options["seed"] = decoding.seed
        if decoding.stop:
            options["stop"] = list(decoding.stop)

        def send(client, prompt):
            if isinstance(prompt, str):
                extra = {} if decoding.logprobs is None else {"logprobs": decoding.logprobs}
                return client.completions.create(prompt=prompt, **options, **extra)
            extra = {} if decoding.logprobs is None else {"logprobs": True, "top_logprobs": decoding.logprobs}
            return client.chat.completions.create(messages=prompt, **options, **extra)

        def parse(response, attempts):
            choice = response.choices[0]
            text = choice.text if hasattr(choice, "text") else choice.message.content
            tokens = None if decoding.logprobs is None else token_logprobs(choice)
            usage = response.usage
            return Generation(text=text or "", finish_reason=choice.finish_reason or "stop",
                              prompt_tokens=usage.prompt_tokens if usage else 0,
                              completion_tokens=usage.completion_tokens if usage else 0, tokens=tokens,
                              attempts=attempts)

        return run_sync(self.batch(prompts, send, parse))

    def score(self, prompts: Sequence[Prompt], labels: Sequence[str]) -> list[Scores | CallFailure]:
        labels = check_labels(labels)
        prompts = [check_prompt(prompt) for prompt in prompts]
        if not self.capabilities.score:
            raise SeqrecError(f"endpoint {self.base_url} ({self.model}) does not return log-probabilities, so it "
                              f"cannot score labels; generate the answer instead, or set capabilities.score = true "
                              f"if the probe was wrong")
        top = max(self.top_logprobs, 1)

        def send(client, prompt):
            if isinstance(prompt, str):
                return client.completions.create(model=self.model, prompt=prompt, max_tokens=1, temperature=0,
                                                 logprobs=top)
            return client.chat.completions.create(model=self.model, messages=prompt, max_tokens=1, temperature=0,
                                                  logprobs=True, top_logprobs=top)

        def parse(response, attempts):
            listed = top_alternatives(response)
            if not listed:
                return CallFailure(error="the answer carried no log-probabilities", attempts=attempts)
            missing = tuple(label for label in labels if label not in listed)
            logprobs = {label: listed.get(label, self.score_floor) for label in labels}
            usage = response.usage
            return Scores(logprobs=logprobs, prompt_tokens=usage.prompt_tokens if usage else 0, missing=missing,
                          attempts=attempts)

        return run_sync(self.batch(prompts, send, parse))


def error_message(exc) -> str:
    """The message inside OpenAI's error shape ``{"error": {"message": ...}}``, else the SDK's own."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", exc))


def top_alternatives(response) -> dict[str, float]:
    """token -> log-prob of the first generated position's alternatives, from a chat or a text completion."""
    logprobs = response.choices[0].logprobs
    if logprobs is None:
        return {}
    if getattr(logprobs, "content", None):
        return {entry.token: entry.logprob for entry in logprobs.content[0].top_logprobs}
    tops = getattr(logprobs, "top_logprobs", None)
    return dict(tops[0]) if tops else {}


def token_logprobs(choice) -> tuple[TokenLogprob, ...]:
    logprobs = choice.logprobs
    if logprobs is None:
        return ()
    if getattr(logprobs, "content", None) is not None:
        return tuple(TokenLogprob(token=entry.token, logprob=entry.logprob,
                                  top={alt.token: alt.logprob for alt in entry.top_logprobs})
                     for entry in logprobs.content)
    tops = logprobs.top_logprobs or [{}] * len(logprobs.tokens)
    return tuple(TokenLogprob(token=token, logprob=logprob, top=dict(top or {}))
                 for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, tops))
