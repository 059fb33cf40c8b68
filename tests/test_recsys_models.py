"""The recommenders' speed paths compute what the plain formulation computes."""

import subprocess
import sys

import pytest
import torch

from seqrec.recsys.allocator import keep_freed_memory
from seqrec.recsys.models.base import catalogue_cross_entropy
from seqrec.recsys.models.dropout import Dropout, dropout
from seqrec.recsys.models.sasrec import SASRec, SASRecConfig, SelfAttention, attention_allowed


def histories(batch: int = 6, length: int = 8, items: int = 30) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(1, items + 1, (batch, length), generator=generator)
    rows[0, :5] = 0  # a short, left-padded history
    return rows


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_newest_only_is_the_last_position_of_the_full_encoder(norm):
    torch.manual_seed(0)
    model = SASRec(30, SASRecConfig(hidden=16, layers=2, heads=2, max_len=8, norm=norm)).eval()
    rows = histories()
    full = model.encoder(model.items(rows), rows, causal=True)[:, -1]
    newest = model.encoder(model.items(rows), rows, causal=True, newest_only=True)
    torch.testing.assert_close(newest, full, atol=1e-5, rtol=1e-5)


def test_post_norm_is_recboles_layout():
    """Post-norm normalises the summed input embeddings and each residual sum; its output is the last block's
    LayerNorm output (so a zero-mean, unit-variance vector per example with the default affine weights)."""
    torch.manual_seed(0)
    model = SASRec(30, SASRecConfig(hidden=16, layers=2, heads=2, max_len=8, norm="post")).eval()
    assert isinstance(model.encoder.input_norm, torch.nn.LayerNorm)
    assert isinstance(model.encoder.final_norm, torch.nn.Identity)
    rows = histories()
    states = model.encode(None, rows)
    torch.testing.assert_close(states.mean(-1), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(states.var(-1, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    pre = SASRec(30, SASRecConfig(hidden=16, layers=2, heads=2, max_len=8)).eval()
    assert isinstance(pre.encoder.input_norm, torch.nn.Identity)


def test_post_norm_computes_recboles_layout_step_by_step():
    """The same network written out by hand: LayerNorm of the summed embeddings, then per block
    x = norm(x + attention(x)), x = norm(x + ffn(x)); the output is the newest position."""
    torch.manual_seed(0)
    model = SASRec(30, SASRecConfig(hidden=16, layers=2, heads=2, max_len=8, norm="post")).eval()
    for module in model.modules():  # distinct affine weights, so that swapping two norms would show
        if isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.normal_(module.weight)
            torch.nn.init.normal_(module.bias)
    encoder, rows = model.encoder, histories()
    allowed = attention_allowed(rows, causal=True)
    with torch.no_grad():
        x = encoder.input_norm(model.items(rows) + encoder.positions.weight)
        for block in encoder.blocks:
            x = block.attention_norm(x + plain_attention(block.attention, x, x, allowed))
            x = block.ffn_norm(x + block.ffn(x))
        torch.testing.assert_close(model.encode(None, rows), x[:, -1], atol=1e-5, rtol=1e-5)


def plain_attention(attention: SelfAttention, queries, keys, allowed, dropout_p: float = 0.0) -> torch.Tensor:
    """The textbook formulation: separate projections of every position, softmax(q k^T / sqrt(d)), its dropout
    (seqrec's, drawn in the [batch, heads, queries, keys] layout), then the weighted sum of the values."""
    key, value = attention.key_value(keys).chunk(2, dim=-1)
    query, key, value = map(attention.split_heads, (attention.query(queries), key, value))
    weights = (query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5).masked_fill(~allowed, float("-inf"))
    attended = dropout(weights.softmax(-1), dropout_p) @ value
    return attention.out(attended.transpose(1, 2).flatten(2))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("newest_only", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_attention_speed_paths_equal_the_plain_formulation(newest_only, training, causal):
    """One product for queries, keys and values and the [keys, queries] weights of every position; for the newest
    position alone, the projections folded into the query and output sides: each must give what the plain
    formulation gives, gradients of the input and of every weight included. The training dropout is too small to
    drop anything."""
    torch.manual_seed(0)
    attention = SelfAttention(hidden=16, heads=2, dropout=1e-9).train(training)
    for parameter in attention.parameters():  # non-zero biases, so that each bias term shows
        torch.nn.init.normal_(parameter, std=0.3)
    rows = histories()
    allowed = attention_allowed(rows, causal=causal)
    x = torch.randn(6, 8, 16, requires_grad=True)
    inputs = [x, *attention.parameters()]
    queries, allowed_rows = (x[:, -1:], allowed[:, :, -1:]) if newest_only else (x, allowed)
    fast = attention(x, allowed, newest_only)
    fast_grads = torch.autograd.grad(fast.square().sum(), inputs)
    plain = plain_attention(attention, queries, x, allowed_rows)
    plain_grads = torch.autograd.grad(plain.square().sum(), inputs)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    for fast_grad, plain_grad in zip(fast_grads, plain_grads):
        torch.testing.assert_close(fast_grad, plain_grad, atol=1e-4, rtol=1e-4)


def test_newest_position_attention_drops_what_the_plain_formulation_drops():
    """With dropout the kept weights no longer sum to 1; the folded values' bias must follow them (b_v sum_j a_j)."""
    attention = SelfAttention(hidden=16, heads=2, dropout=0.5)
    for parameter in attention.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    allowed = attention_allowed(histories(), causal=True)
    x = torch.randn(6, 8, 16, requires_grad=True)
    torch.manual_seed(1)
    fast = attention(x, allowed, newest_only=True)
    torch.manual_seed(1)
    plain = plain_attention(attention, x[:, -1:], x, allowed[:, :, -1:], dropout_p=0.5)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    inputs = [x, *attention.parameters()]
    for fast_grad, plain_grad in zip(torch.autograd.grad(fast.sum(), inputs), torch.autograd.grad(plain.sum(), inputs)):
        torch.testing.assert_close(fast_grad, plain_grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("newest_only", [False, True])
def test_attention_weights_are_dropped_in_training_only(newest_only):
    torch.manual_seed(0)
    attention = SelfAttention(hidden=16, heads=2, dropout=0.5)
    rows = histories()
    allowed = attention_allowed(rows, causal=True)
    x = torch.randn(6, 8, 16)
    queries, allowed_rows = (x[:, -1:], allowed[:, :, -1:]) if newest_only else (x, allowed)
    plain = plain_attention(attention, queries, x, allowed_rows)
    torch.testing.assert_close(attention.eval()(x, allowed, newest_only), plain, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(attention.train()(x, allowed, newest_only), plain, atol=1e-3)


def test_scores_stay_float32_under_bf16_autocast():
    """Mixed-precision evaluation runs the encoder in bf16 but must not round the scores to bf16: with 8 bits of
    mantissa, nearby items would tie and the ranks would be decided by rounding."""
    torch.manual_seed(0)
    model = SASRec(500, SASRecConfig(hidden=16, layers=2, heads=2, max_len=8)).eval()
    rows = histories(items=500)
    exact = model.scores(None, rows)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.scores(None, rows)
    assert mixed.dtype == torch.float32 and torch.isneginf(mixed[:, 0]).all()
    real = mixed[:, 1:]
    assert all(len(row.unique()) == real.shape[1] for row in real)  # bf16-rounded scores tie by the dozen here
    assert len(real[0].bfloat16().unique()) < real.shape[1]
    torch.testing.assert_close(mixed, exact, atol=0.1, rtol=0.05)  # only the encoder's bf16 error


def test_catalogue_cross_entropy_is_the_loss_with_the_padding_item_masked():
    torch.manual_seed(0)
    states = torch.randn(5, 8, requires_grad=True)
    table = torch.randn(12, 8, requires_grad=True)  # row 0: the padding item
    targets = torch.tensor([1, 4, 11, 7, 1])
    loss = catalogue_cross_entropy(states, table, targets)
    grads = torch.autograd.grad(loss, (states, table))
    masked = (states @ table.T).index_fill(1, torch.tensor([0]), float("-inf"))
    reference = torch.nn.functional.cross_entropy(masked, targets)
    torch.testing.assert_close(loss, reference)
    for grad, expected in zip(grads, torch.autograd.grad(reference, (states, table))):
        torch.testing.assert_close(grad, expected)
    assert torch.equal(grads[1][0], torch.zeros(8))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_cpu_dropout_keeps_the_expectation_and_the_rate(p):
    torch.manual_seed(0)
    x = torch.full((400, 1000), 2.0, requires_grad=True)
    y = dropout(x, p)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    assert abs(y.mean().item() - 2.0) < 0.02  # kept values are scaled up by 1 / keep probability
    assert torch.allclose(y[kept], y[kept][0])
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach() / 2.0)  # the gradient is the same mask and scale


def test_cpu_dropout_is_seeded_and_off_outside_training():
    x = torch.randn(64, 32)
    torch.manual_seed(3)
    first = Dropout(0.2).train()(x)
    torch.manual_seed(3)
    assert torch.equal(first, Dropout(0.2).train()(x))
    assert torch.equal(Dropout(0.2).eval()(x), x)
    assert torch.equal(dropout(x, 0.0), x)


FAULTS_OF_SMALL_TRAINING_STEPS = """
import resource, sys, torch
from seqrec.recsys.allocator import keep_freed_memory

def faults_of_ten_small_training_steps():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        x = torch.randn(256, 10, 64, requires_grad=True)
        weight = torch.randn(64, 256, requires_grad=True)
        torch.nn.functional.gelu(x @ weight).sum().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

if sys.argv[1] == "kept":
    keep_freed_memory()
faults_of_ten_small_training_steps()  # the first steps fault the heap in
print(min(faults_of_ten_small_training_steps() for _ in range(3)))
"""


def test_freed_tensor_memory_is_reused_without_page_faults():
    """Each in a fresh process: glibc adapts its thresholds to what a process has freed before, so in the test
    process the defaults could look as good as the setting."""
    if not keep_freed_memory():
        pytest.skip("not glibc")

    def faults(setting: str) -> int:
        command = [sys.executable, "-c", FAULTS_OF_SMALL_TRAINING_STEPS, setting]
        return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    # glibc's defaults fault thousands of pages in every such measurement; kept memory none, apart from an
    # occasional burst of a few hundred from the kernel's side, hence the best of three
    assert faults("kept") < 100
    assert faults("defaults") > 1000
