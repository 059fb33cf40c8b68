"""`seqrec serve`: an OpenAI-compatible HTTP server for a registry model or a trained student (``run:ID``).

Routes: ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/completions`` (temperature, top_p,
max_tokens, seed, stop, logprobs / top_logprobs; n = 1, no streaming). One worker owns the model: requests that
arrive while it is busy are queued and the next batch takes them all, padded into one ``generate`` call.
Errors use OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` and never stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from seqrec.errors import SeqrecError
from seqrec.llm.backends.base import ContextLengthError, Decoding, Generation, Prompt
from seqrec.llm.backends.local import LocalBackend

DEFAULT_MAX_TOKENS = 256  # when a request names none: a bound on CPU time rather than the whole context


class APIError(Exception):
    """An error answered in OpenAI's JSON shape with its HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> JSONResponse:
        return JSONResponse(status_code=self.status, content={"error": {
            "message": self.message, "type": self.kind, "param": self.param, "code": self.code}})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send a "name" or tool fields the template may ignore
    role: str
    content: str


class Sampling(Strict):
    model: str
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: Literal[1] = 1
    stream: Literal[False] = False
    user: str | None = None

    def decoding(self, max_tokens: int | None, logprobs: int | None) -> Decoding:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Decoding(max_tokens=max_tokens or self.max_tokens or DEFAULT_MAX_TOKENS,
                        temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=tuple(stop),
                        logprobs=logprobs)


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class CompletionRequest(Sampling):
    prompt: str
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for text completions
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: Literal[False] = False


class Batcher:
    """A queue in front of the one worker thread that runs the model; greedy and unseeded requests with the
    same decoding go through ``generate`` together, a seeded sampled request alone so that its seed repeats."""

    def __init__(self, backend: LocalBackend, max_batch: int):
        self.backend, self.max_batch = backend, max_batch
        self.queue: asyncio.Queue = asyncio.Queue()

    async def submit(self, prompt: Prompt, decoding: Decoding) -> Generation:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((prompt, decoding, future))
        return await future

    async def work(self) -> None:
        while True:
            jobs = [await self.queue.get()]
            while not self.queue.empty() and len(jobs) < self.max_batch:
                jobs.append(self.queue.get_nowait())
            groups: dict = {}
            for job in jobs:
                decoding = job[1]
                alone = not decoding.greedy and decoding.seed is not None
                groups.setdefault((decoding, id(job) if alone else None), []).append(job)
            for (decoding, _), group in groups.items():
                outcomes = await asyncio.to_thread(self.run, [job[0] for job in group], decoding)
                for (_, _, future), outcome in zip(group, outcomes):
                    if future.done():
                        continue  # the client went away
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)

    def run(self, prompts: list[Prompt], decoding: Decoding) -> list:
        """In the worker thread: each prompt tokenized and checked alone, the ones that fit generated together."""
        outcomes: list = [None] * len(prompts)
        fitting, encoded = [], []
        for index, prompt in enumerate(prompts):
            try:
                ids = self.backend.prompt_ids(prompt)
                self.backend.check_fits(len(ids), decoding.max_tokens)
            except SeqrecError as exc:
                outcomes[index] = exc
                continue
            fitting.append(index)
            encoded.append(ids)
        try:
            generations = self.backend.generate_encoded(encoded, decoding) if encoded else []
        except Exception as exc:  # a failed batch answers each of its requests with a 500, the server goes on
            generations = [exc] * len(encoded)
        for index, generation in zip(fitting, generations):
            outcomes[index] = generation
        return outcomes


def create_app(backend: LocalBackend, served_name: str, *, max_batch: int = 8) -> FastAPI:
    """The FastAPI app for one loaded model (apart from uvicorn, so that tests can drive it too)."""
    batcher = Batcher(backend, max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = asyncio.create_task(batcher.work())
        yield
        worker.cancel()

    app = FastAPI(title=f"seqrec serve {served_name}", lifespan=lifespan)
    created = int(time.time())

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return validation_error(exc).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return APIError(exc.status_code, str(exc.detail), code=None if exc.status_code != 404 else "not_found",
                        kind="invalid_request_error").response()

    def check_model(name: str) -> None:
        if name != served_name:
            raise APIError(404, f"The model `{name}` does not exist; this server serves `{served_name}`.",
                           param="model", code="model_not_found")

    async def complete(prompt: Prompt, decoding: Decoding) -> Generation:
        try:
            return await batcher.submit(prompt, decoding)
        except ContextLengthError as exc:
            raise APIError(400, str(exc), param="max_tokens", code="context_length_exceeded") from None
        except SeqrecError as exc:
            raise APIError(400, str(exc), param="messages" if not isinstance(prompt, str) else "prompt") from None
        except Exception as exc:
            raise APIError(500, f"the model failed on this request: {type(exc).__name__}: {exc}",
                           kind="server_error") from None

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served_name, "object": "model", "created": created,
                                            "owned_by": "seqrec"}]}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        check_model(body.model)
        generation = await complete(body.prompt, body.decoding(None, body.logprobs))
        choice = {"index": 0, "text": generation.text, "finish_reason": generation.finish_reason,
                  "logprobs": None if body.logprobs is None else text_logprobs(generation)}
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": served_name, "choices": [choice], "usage": usage(generation)}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest):
        check_model(body.model)
        top = (body.top_logprobs or 0) if body.logprobs else None
        messages = [{"role": message.role, "content": message.content} for message in body.messages]
        generation = await complete(messages, body.decoding(body.max_completion_tokens, top))
        choice = {"index": 0, "message": {"role": "assistant", "content": generation.text},
                  "finish_reason": generation.finish_reason,
                  "logprobs": None if top is None else chat_logprobs(generation)}
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": served_name, "choices": [choice], "usage": usage(generation)}

    return app


def validation_error(exc: RequestValidationError) -> APIError:
    """The first problem of a request body as one OpenAI-style 400 naming the parameter."""
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        return APIError(400, "The request body is not valid JSON.", code="invalid_json")
    if first.get("type") == "extra_forbidden":
        return APIError(400, f"Unrecognized request argument supplied: {param}", param=param)
    return APIError(400, f"Invalid value for '{param}': {first.get('msg')}" if param else str(first.get("msg")),
                    param=param)


def usage(generation: Generation) -> dict:
    return {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
            "total_tokens": generation.prompt_tokens + generation.completion_tokens}


def text_logprobs(generation: Generation) -> dict:
    tokens = generation.tokens or ()
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token.token)
    return {"tokens": [token.token for token in tokens], "token_logprobs": [token.logprob for token in tokens],
            "top_logprobs": [token.top for token in tokens], "text_offset": offsets}


def chat_logprobs(generation: Generation) -> dict:
    def entry(token: str, logprob: float) -> dict:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {"content": [{**entry(token.token, token.logprob),
                         "top_logprobs": [entry(text, value) for text, value in token.top.items()]}
                        for token in generation.tokens or ()]}


def check_port(host: str, port: int) -> None:
    """A port already taken is one clear line, not a uvicorn traceback after the model has loaded."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SeqrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") \
                from None


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, served_name: str | None = None,
          dtype: str = "auto", max_batch: int = 8) -> None:
    """Load ``model`` (an alias, ``run:ID`` or a model folder) and answer OpenAI requests until interrupted."""
    import uvicorn
    from rich.console import Console

    check_port(host, port)
    backend = LocalBackend(model, dtype=dtype, batch_size=max_batch)
    name = served_name or model
    Console(stderr=True).print(f"serving {name} ({backend.dtype}) at http://{host}:{port}/v1", highlight=False,
                               soft_wrap=True)
    uvicorn.run(create_app(backend, name, max_batch=max_batch), host=host, port=port, log_level="warning")
