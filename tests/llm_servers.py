"""Real HTTP servers on 127.0.0.1 for the LLM backend tests: a scripted OpenAI-shaped server that answers each
request with the next fault of a script (429, 500, a body that is not JSON, no choices, a stall), and
`seqrec serve` itself started as a subprocess on a tiny model."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from seqrec.llm.tiny import build_tiny_model

CHAT_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<s>assistant:{% endif %}")


def build_chat_model(folder: Path) -> Path:
    """A tiny Llama whose tokenizer has a chat template, so chat messages work as with a real instruct model."""
    from transformers import AutoTokenizer

    build_tiny_model(folder, "llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def completion_body(text: str = "ok", logprobs: dict | None = None) -> dict:
    """A chat completion as an OpenAI server returns it; ``logprobs`` lists the first token's alternatives."""
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
              "logprobs": None}
    if logprobs is not None:
        first = next(iter(logprobs))
        choice["logprobs"] = {"content": [{"token": first, "logprob": logprobs[first], "bytes": None,
                                           "top_logprobs": [{"token": token, "logprob": value, "bytes": None}
                                                            for token, value in logprobs.items()]}]}
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this each waits 40 ms

    def log_message(self, *args):  # keep test output clean
        pass

    def reply(self, status: int, body: bytes, headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        server = self.server
        if server.auth and self.headers.get("Authorization") != f"Bearer {server.auth}":
            self.reply(401, json.dumps({"error": {"message": "Incorrect API key provided"}}).encode())
            return
        listing = [{"id": name, "object": "model", "created": 0, "owned_by": "test"} for name in server.models]
        self.reply(200, json.dumps({"object": "list", "data": listing}).encode())

    def do_POST(self):
        server = self.server
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length))
        with server.lock:
            server.requests.append(request)
            step = server.script.pop(0) if server.script else ("ok",)
            server.in_flight += 1
            server.peak = max(server.peak, server.in_flight)
        try:
            if server.delay:
                time.sleep(server.delay)
            self.answer(step)
        finally:
            with server.lock:
                server.in_flight -= 1

    def answer(self, step):
        kind = step[0]
        if kind == "ok":
            self.reply(200, json.dumps(completion_body(*step[1:])).encode())
        elif kind == "status":
            status, headers = step[1], step[2] if len(step) > 2 else {}
            self.reply(status, json.dumps({"error": {"message": f"scripted {status}", "type": "test"}}).encode(),
                       headers)
        elif kind == "not-json":
            self.reply(200, b"<html>upstream proxy error</html>", content_type="text/html")
        elif kind == "broken-json":
            self.reply(200, b'{"choices": [', content_type="application/json")
        elif kind == "no-choices":
            self.reply(200, json.dumps({**completion_body(), "choices": []}).encode())
        elif kind == "stall":
            time.sleep(step[1])
            self.reply(200, json.dumps(completion_body()).encode())
        else:
            raise AssertionError(f"unknown scripted step {step!r}")


@contextmanager
def scripted_server(script=(), *, models=("m",), delay: float = 0.0, auth: str | None = None):
    """A threaded OpenAI-shaped server; yields it (``.url``, ``.requests``); ``script`` steps answer requests in
    order, then every request succeeds."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    server.daemon_threads = True
    server.script, server.requests, server.lock = list(script), [], threading.Lock()
    server.models, server.delay, server.auth = list(models), delay, auth
    server.in_flight = server.peak = 0
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def seqrec_serve(model: Path, home: Path, *, served_name: str = "tiny", dtype: str = "float32",
                 timeout: float = 120.0):
    """`seqrec serve` as a real process on a free port; yields its base URL once /v1/models answers."""
    port = free_port()
    env = {**os.environ, "SEQREC_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "seqrec", "serve", "--model", str(model), "--served-name", served_name,
               "--port", str(port), "--dtype", dtype]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"seqrec serve exited early:\n{process.stdout.read()}")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("seqrec serve did not answer in time") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
