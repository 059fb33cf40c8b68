"""The recommenders compute what their papers' formulations compute, and the objectives score what they should."""

import pytest
import torch
import torch.nn.functional as F

from seqrec.data.batches import sequence_examples
from seqrec.recsys.models import RECOMMENDERS
from seqrec.recsys.models.base import SequentialRecommender, catalogue_cross_entropy
from seqrec.recsys.models.sasrec import SASRec, SASRecConfig, SelfAttention, attention_allowed


def histories(batch: int = 6, length: int = 8, items: int = 30) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(1, items + 1, (batch, length), generator=generator)
    rows[0, :5] = 0  # a short, left-padded history
    return rows


def model_of(name: str, **options) -> SequentialRecommender:
    torch.manual_seed(0)
    model_class, config_class = RECOMMENDERS[name]
    return model_class(30, config_class(hidden=16, max_len=8, **options), num_users=6).eval()


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
            x = block.attention_norm(x + plain_attention(block.attention, x, allowed))
            x = block.ffn_norm(x + block.ffn(x))
        torch.testing.assert_close(model.encode(None, rows), x[:, -1], atol=1e-5, rtol=1e-5)


def plain_attention(attention: SelfAttention, x, allowed) -> torch.Tensor:
    """The textbook formulation: softmax(q k^T / sqrt(d)) v per head, written out."""
    query, key, value = (part.unflatten(-1, (attention.heads, -1)).transpose(1, 2)
                         for part in attention.qkv(x).chunk(3, dim=-1))
    weights = (query @ key.transpose(-1, -2) * query.shape[-1] ** -0.5).masked_fill(~allowed, float("-inf"))
    return attention.out((weights.softmax(-1) @ value).transpose(1, 2).flatten(2))


@pytest.mark.parametrize("causal", [False, True])
def test_attention_is_the_textbook_formulation(causal):
    torch.manual_seed(0)
    attention = SelfAttention(16, 2, dropout=0.5).eval()
    rows = histories()
    x = torch.randn(6, 8, 16)
    allowed = attention_allowed(rows, causal)
    torch.testing.assert_close(attention(x, allowed), plain_attention(attention, x, allowed), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(attention.train()(x, allowed), plain_attention(attention, x, allowed), atol=1e-3)


def test_gru4rec_in_one_pass_equals_each_prefix_encoded_alone():
    """The recurrence gives the state after every prefix in one pass; the base class's prefix-by-prefix form (what
    Caser uses) is the reference."""
    model, rows = model_of("gru4rec"), histories()
    users = torch.arange(1, 7)
    with torch.no_grad():
        one_pass = model.encode_positions(users, rows)
        prefix_by_prefix = SequentialRecommender.encode_positions(model, users, rows)
    real = rows > 0
    torch.testing.assert_close(one_pass[real], prefix_by_prefix[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.encode(users, rows), one_pass[:, -1])


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_sasrec_states_at_every_position_see_only_earlier_items(norm):
    """As in the SASRec paper, one causal pass gives every position's state (positions embedded by column): the
    state at position t does not change when the items after t do, and ``encode`` is the newest position's."""
    model, rows = model_of("sasrec", norm=norm), histories()
    changed = rows.clone()
    changed[:, 5:] = torch.randint(1, 31, (6, 3), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        states, changed_states = model.encode_positions(None, rows), model.encode_positions(None, changed)
    torch.testing.assert_close(states[1:, :5], changed_states[1:, :5])
    assert not torch.allclose(states[:, 5:], changed_states[:, 5:], atol=1e-4)
    torch.testing.assert_close(model.encode(None, rows), states[:, -1])


def test_gru4rec_states_do_not_depend_on_the_padding_before_a_history():
    model = model_of("gru4rec")
    with torch.no_grad():
        padded = model.encode_positions(None, torch.tensor([[0, 0, 0, 0, 0, 3, 7, 9]]))[0, -3:]
        unpadded = model.encode_positions(None, torch.tensor([[3, 7, 9]]))[0]
    torch.testing.assert_close(padded, unpadded)


def test_the_all_position_loss_is_the_mean_over_every_non_padding_position():
    """Hand-computed: the cross-entropy at each position whose target is an item, averaged over those positions."""
    model = model_of("sasrec", objective="all", dropout=0.0)
    inputs = torch.tensor([[0, 0, 0, 0, 0, 4, 2, 9], [3, 1, 4, 1, 5, 9, 2, 6]])
    targets = torch.tensor([[0, 0, 0, 0, 0, 2, 9, 7], [1, 4, 1, 5, 9, 2, 6, 5]])
    states = model.encode_positions(None, inputs)
    table = model.output_items()
    terms = [F.cross_entropy((states[row, column] @ table[1:].T)[None], targets[row, column][None] - 1)
             for row in range(2) for column in range(8) if targets[row, column] > 0]
    assert len(terms) == 11
    torch.testing.assert_close(model.loss(None, inputs, targets), torch.stack(terms).mean())


def test_the_last_position_loss_scores_only_the_newest_position():
    model = model_of("sasrec", objective="last", dropout=0.0)
    rows, targets = histories(), torch.arange(1, 7)
    expected = F.cross_entropy(model.encode(None, rows) @ model.output_items()[1:].T, targets - 1)
    torch.testing.assert_close(model.loss(None, rows, targets), expected)


def test_each_training_transition_is_a_target_exactly_once_per_epoch(walk):
    from seqrec.data.prepare import load_dataset

    data = load_dataset("walk")
    users, inputs, targets = sequence_examples(data, max_len=3).tensors
    expected = sorted((int(user), int(a), int(b)) for user, items in zip(data.train["user"], data.train["items"])
                      for a, b in zip(items[:-1], items[1:]))
    pairs = sorted((int(users[row]), int(inputs[row, column]), int(targets[row, column]))
                   for row in range(len(users)) for column in range(3) if targets[row, column] > 0)
    assert pairs == expected
    assert torch.equal(inputs > 0, targets > 0)  # padded alike
    followed = targets[:, :-1] > 0
    assert torch.equal(inputs[:, 1:][followed], targets[:, :-1][followed])  # each target is the next input


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
