"""`seqrec serve` as a real process on 127.0.0.1, driven by the openai SDK and by raw HTTP."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from llm_servers import build_chat_model, seqrec_serve

from seqrec.errors import SeqrecError
from seqrec.llm.backends import Decoding, Generation, Scores
from seqrec.llm.backends.local import LocalBackend
from seqrec.llm.backends.openai_api import OpenAIBackend

TEXTS = ["Toy Story (1995)", "The Dark Knight Returns Again In The City", "Up", "Heat (1995) and then"]
CHATS = [[{"role": "user", "content": text}] for text in TEXTS]


def labels_near_the_top(local, prompts):
    """Single-token labels among each prompt's five likeliest next tokens, and two that are likely not."""
    labels = []
    for generation in local.generate(prompts, Decoding(max_tokens=1, logprobs=5)):
        for token in generation.tokens[0].top:
            try:
                local.label_id(token)
            except SeqrecError:
                continue  # a byte fragment that is not a whole label
            labels += [token] if token not in labels else []
    return labels + [label for label in ("A", "B") if label not in labels]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model = build_chat_model(tmp_path_factory.mktemp("served") / "llama")
    with seqrec_serve(model, tmp_path_factory.mktemp("home")) as url:
        yield url, model


@pytest.fixture(scope="module")
def local(served, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # module-scoped: the per-test SEQREC_HOME is not set up yet
        patch.setenv("SEQREC_HOME", str(tmp_path_factory.mktemp("local-home")))
        return LocalBackend(str(served[1]), dtype="float32")


def remote(served, **options):
    return OpenAIBackend(served[0], "tiny", backoff=0.01, **options)


def post(url, body: bytes):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_sdk_lists_the_served_model(served):
    client = openai.OpenAI(base_url=served[0], api_key="none")
    assert [model.id for model in client.models.list().data] == ["tiny"]


@pytest.mark.parametrize("prompts", [TEXTS, CHATS], ids=["text", "chat"])
def test_greedy_generations_over_http_equal_the_local_backends(served, local, prompts):
    decoding = Decoding(max_tokens=8)
    over_http = remote(served).generate(prompts, decoding)
    assert all(isinstance(result, Generation) for result in over_http)
    assert [result.text for result in over_http] == [result.text for result in local.generate(prompts, decoding)]


@pytest.mark.parametrize("prompts", [TEXTS, CHATS], ids=["text", "chat"])
def test_scores_over_http_equal_the_local_backends_within_its_top_n(served, local, prompts):
    backend = remote(served, top_logprobs=5)
    assert backend.capabilities.score
    labels = labels_near_the_top(local, prompts)
    for far, near in zip(backend.score(prompts, labels), local.score(prompts, labels)):
        assert isinstance(far, Scores)
        listed = [label for label in labels if label not in far.missing]
        assert listed, "no label in the top 5: the comparison would check nothing"
        for label in listed:
            assert far.logprobs[label] == pytest.approx(near.logprobs[label], abs=1e-4)
        for label in far.missing:  # outside the top 5, so below every listed label
            assert far.logprobs[label] == backend.score_floor
            assert near.logprobs[label] <= min(near.logprobs[other] for other in listed) + 1e-4


def test_concurrent_requests_each_get_their_own_answer(served, local):
    client = openai.OpenAI(base_url=served[0], api_key="none")

    def ask(text):
        answer = client.completions.create(model="tiny", prompt=text, max_tokens=6, temperature=0)
        return answer.choices[0].text

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, TEXTS * 2))
    expected = [result.text for result in local.generate(TEXTS, Decoding(max_tokens=6))]
    assert answers == expected * 2


def test_logprobs_and_usage_have_openais_shape(served):
    client = openai.OpenAI(base_url=served[0], api_key="none")
    answer = client.chat.completions.create(model="tiny", messages=CHATS[0], max_tokens=3, temperature=0,
                                            logprobs=True, top_logprobs=2)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens == 3 and len(content[0].top_logprobs) == 2
    assert content[0].logprob == content[0].top_logprobs[0].logprob
    text = client.completions.create(model="tiny", prompt="Up", max_tokens=2, temperature=0, logprobs=3)
    assert len(text.choices[0].logprobs.top_logprobs[0]) <= 3 and text.choices[0].logprobs.text_offset[0] == 0


@pytest.mark.parametrize("body, status, code", [
    (b'{"model": "tiny", "prompt": ', 400, "invalid_json"),
    (b'{"model": "tiny", "prompt": "Up", "best_of": 3}', 400, None),
    (b'{"model": "tiny", "prompt": "Up", "max_tokens": 100000}', 400, "context_length_exceeded"),
    (b'{"model": "gpt-4", "prompt": "Up"}', 404, "model_not_found"),
    (b'{"model": "tiny", "prompt": "Up", "n": 2}', 400, None),
    (b'{"model": "tiny", "prompt": "Up", "temperature": -1}', 400, None),
], ids=["malformed-json", "unknown-field", "beyond-context", "unknown-model", "n-2", "negative-temperature"])
def test_bad_requests_get_openai_shaped_errors_and_the_server_keeps_serving(served, body, status, code):
    answer_status, answer = post(f"{served[0]}/completions", body)
    assert answer_status == status
    assert set(answer["error"]) == {"message", "type", "param", "code"} and answer["error"]["code"] == code
    assert answer["error"]["message"]
    ok_status, ok = post(f"{served[0]}/completions", b'{"model": "tiny", "prompt": "Up", "max_tokens": 2}')
    assert ok_status == 200 and ok["choices"][0]["text"] is not None


def test_the_sdk_raises_its_typed_errors(served):
    client = openai.OpenAI(base_url=served[0], api_key="none", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4", prompt="Up")
    with pytest.raises(openai.BadRequestError, match="context_length_exceeded|context"):
        client.chat.completions.create(model="tiny", messages=CHATS[0], max_tokens=100000)


def test_a_backend_naming_a_model_the_server_does_not_serve_is_one_clear_error(served):
    with pytest.raises(SeqrecError, match="does not serve model 'gpt-4'; it serves: tiny"):
        OpenAIBackend(served[0], "gpt-4")
