"""Every LLM call lands in the llm_call table; deterministic ones are answered from it; the key never leaks."""

import pytest
from llm_servers import build_chat_model, scripted_server
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.llm.backends import CachedLLM, CallFailure, Decoding, Generation
from seqrec.llm.backends.local import LocalBackend
from seqrec.llm.backends.openai_api import OpenAIBackend
from seqrec.store import open_store

PROMPTS = [[{"role": "user", "content": f"item {number}"}] for number in range(5)]


def endpoint(server, **options):
    return OpenAIBackend(server.url, "m", backoff=0.01, **options)


def test_a_repeated_deterministic_batch_is_answered_from_the_table():
    with scripted_server() as server:
        llm = CachedLLM(endpoint(server))
        first = llm.generate(PROMPTS, Decoding(max_tokens=4))
        sent = len(server.requests)
        again = llm.generate(PROMPTS, Decoding(max_tokens=4))
        assert again == first and len(server.requests) == sent
        assert (llm.counts.hits, llm.counts.fresh) == (5, 5)


def test_rows_keep_the_request_response_latency_and_tokens(seqrec_home):
    with scripted_server() as server:
        llm = CachedLLM(endpoint(server))
        llm.generate(PROMPTS[:1], Decoding(max_tokens=4))
    row = open_store().llm_calls()[-1]
    assert row.backend == "openai" and row.model == f"{server.url}#m"
    assert row.request["prompt"] == PROMPTS[0] and row.request["params"]["max_tokens"] == 4
    assert '"text": "ok"' in row.response and row.latency_s > 0
    assert (row.prompt_tokens, row.completion_tokens, row.error) == (3, 1, None)


def test_a_sampled_request_without_a_seed_is_never_answered_from_the_table():
    with scripted_server() as server:
        llm = CachedLLM(endpoint(server))
        for _ in range(2):
            llm.generate(PROMPTS[:2], Decoding(temperature=0.8))
        assert (llm.counts.hits, llm.counts.fresh) == (0, 4)
        llm.generate(PROMPTS[:2], Decoding(temperature=0.8, seed=1))
        llm.generate(PROMPTS[:2], Decoding(temperature=0.8, seed=1))
        assert llm.counts.hits == 2


def test_no_cache_sends_again_and_still_records():
    with scripted_server() as server:
        CachedLLM(endpoint(server)).generate(PROMPTS, Decoding())
        fresh = CachedLLM(endpoint(server), no_cache=True)
        fresh.generate(PROMPTS, Decoding())
        assert (fresh.counts.hits, fresh.counts.fresh) == (0, 5)
    assert len(open_store().llm_calls()) == 10


def test_other_decoding_or_another_model_is_another_key():
    with scripted_server(models=("m", "n")) as server:
        llm = CachedLLM(endpoint(server))
        llm.generate(PROMPTS[:1], Decoding(max_tokens=4))
        llm.generate(PROMPTS[:1], Decoding(max_tokens=5))
        other = CachedLLM(OpenAIBackend(server.url, "n"))
        other.generate(PROMPTS[:1], Decoding(max_tokens=4))
        assert llm.counts.hits == other.counts.hits == 0


def test_failures_and_retries_are_counted_and_a_failed_call_is_tried_again_next_time():
    with scripted_server([("status", 500)] * 2 + [("status", 429)]) as server:
        llm = CachedLLM(endpoint(server, max_retries=1), run_id=None)
        failed = llm.generate(PROMPTS[:1], Decoding())[0]
        assert isinstance(failed, CallFailure)
        retried = llm.generate(PROMPTS[:1], Decoding())[0]
        assert isinstance(retried, Generation) and retried.attempts == 2
        assert (llm.counts.failures, llm.counts.retries, llm.counts.fresh, llm.counts.hits) == (1, 2, 2, 0)
        assert llm.counts.as_metrics()["llm_failures"] == 1
    rows = open_store().llm_calls()
    assert rows[0].error.startswith("500") and rows[0].response is None


def test_a_repeated_prompt_in_one_batch_is_sent_once():
    with scripted_server() as server:
        llm = CachedLLM(endpoint(server))
        llm.generate([PROMPTS[0]] * 3, Decoding())
        assert len(server.requests) == 1 and (llm.counts.fresh, llm.counts.hits) == (1, 2)


def test_the_api_key_is_sent_but_never_written(monkeypatch, seqrec_home):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-very-secret-value")
    with scripted_server(auth="sk-very-secret-value") as server:
        CachedLLM(endpoint(server, api_key_env="TEST_LLM_KEY")).generate(PROMPTS, Decoding())
    written = b"".join(path.read_bytes() for path in seqrec_home.rglob("*") if path.is_file())
    assert b"sk-very-secret-value" not in written and b"TEST_LLM_KEY" not in written


def test_local_scores_are_cached_under_the_weights_identity(tmp_path):
    backend = LocalBackend(str(build_chat_model(tmp_path / "chat")), dtype="float32")
    llm = CachedLLM(backend)
    first = llm.score(["Toy Story", "Heat"], ["A", "B"])
    assert llm.score(["Toy Story", "Heat"], ["A", "B"]) == first and llm.counts.hits == 2
    assert open_store().llm_calls()[0].model == backend.identity


def test_serve_with_an_unknown_model_is_one_error_line_and_exit_2():
    result = CliRunner().invoke(app, ["serve", "--model", "no-such-model"])
    assert result.exit_code == 2 and "error: unknown model 'no-such-model'" in result.output
    assert "Traceback" not in result.output


def test_serve_on_a_taken_port_is_one_error_line_and_exit_2():
    with scripted_server() as server:
        port = server.server_address[1]
        result = CliRunner().invoke(app, ["serve", "--model", "no-such-model", "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output


@pytest.mark.parametrize("label", [" the", "AB"])
def test_a_label_that_is_not_one_token_is_one_clear_error(tmp_path, label):
    from seqrec.errors import SeqrecError

    backend = LocalBackend(str(build_chat_model(tmp_path / "chat")), dtype="float32")
    with pytest.raises(SeqrecError, match=f"score label {label!r} is not one token"):
        CachedLLM(backend).score(["Toy Story"], ["A", label])
    assert open_store().llm_calls() == []


def test_a_run_records_its_counts_and_owns_its_rows():
    store = open_store()
    with scripted_server([("status", 503)]) as server, store.start_run("rerank", {"k": 1}) as run:
        llm = CachedLLM(endpoint(server), run_id=run.id)
        llm.generate(PROMPTS[:2], Decoding())
        llm.generate(PROMPTS[:2], Decoding())
        llm.log_counts(run)
    assert store.final_metrics(run.id)["llm"] == {"llm_cache_hits": 2, "llm_fresh_calls": 2, "llm_retries": 1,
                                                  "llm_failures": 0}
    assert [row.run_id for row in store.llm_calls(run_id=run.id)] == [run.id, run.id]
