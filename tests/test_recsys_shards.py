"""A CPU batch split across threads (recsys/shards.py) trains as the whole batch would, and a seed decides it."""

import threading
import time
from types import SimpleNamespace

import pytest
import torch

from seqrec.recsys.models import MODELS
from seqrec.recsys.models.randomness import drawing_from, generator
from seqrec.recsys.shards import CoreShards, shard_count
from seqrec.recsys.train import TrainConfig, make_accelerator

ITEMS, USERS, LENGTH = 30, 12, 8


def small_model(name: str, dropout: float, loss: str = "ce") -> torch.nn.Module:
    model_class, config_class = MODELS[name]
    torch.manual_seed(0)
    return model_class(ITEMS, config_class(hidden=16, dropout=dropout, max_len=LENGTH, loss=loss), num_users=USERS)


def batch(size: int) -> tuple[torch.Tensor, ...]:
    rows = torch.Generator().manual_seed(1)
    histories = torch.randint(1, ITEMS + 1, (size, LENGTH), generator=rows)
    histories[0, :5] = 0  # a short, left-padded history
    return (torch.randint(1, USERS + 1, (size,), generator=rows), histories,
            torch.randint(1, ITEMS + 1, (size,), generator=rows))


def gradients(model, shards: int, accelerator, size: int = 11) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with CoreShards(shards) as core_shards, core_shards.threads_set():
        loss = core_shards.backward(model, batch(size), accelerator)
    return float(loss.detach()), {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "caser"])
@pytest.mark.parametrize("grad_accum", [1, 2])
def test_a_split_batch_has_the_loss_and_gradient_of_the_whole_batch(name, grad_accum):
    """Uneven shards (11 examples in 2 or 3) are weighted by their sizes; gradients are divided as Accelerate's
    backward divides them under accumulation."""
    model, accelerator = small_model(name, dropout=0.0), make_accelerator(TrainConfig(grad_accum=grad_accum))
    whole_loss, whole = gradients(model, 1, accelerator)
    for shards in (2, 3):
        loss, split = gradients(model, shards, accelerator)
        assert loss == pytest.approx(whole_loss, rel=1e-6)
        assert split.keys() == whole.keys()
        for key in whole:
            torch.testing.assert_close(split[key], whole[key], atol=1e-7, rtol=1e-5)


def test_gradients_are_added_to_those_of_earlier_micro_batches():
    model, accelerator = small_model("sasrec", dropout=0.0), make_accelerator(TrainConfig(grad_accum=2))
    _, once = gradients(model, 2, accelerator)
    with CoreShards(2) as shards, shards.threads_set():
        shards.backward(model, batch(11), accelerator)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, 2 * once[name])


@pytest.mark.parametrize("name, dropout, loss", [("sasrec", 0.5, "ce"), ("gru4rec", 0.0, "bce")])
def test_the_seed_decides_every_draw_whichever_shard_runs_first(monkeypatch, name, dropout, loss):
    """The main thread's shard is made to start late in one step and early in the other: each shard draws its dropout
    masks (or its sampled negatives) from its own generator, so the gradients are the same bit for bit."""
    model, accelerator = small_model(name, dropout, loss), make_accelerator(TrainConfig())
    original = CoreShards.shard_backward

    def step(late: str) -> dict[str, torch.Tensor]:
        def shard_backward(*args):
            on_main = threading.current_thread() is threading.main_thread()
            if on_main == (late == "main"):
                time.sleep(0.05)
            return original(*args)

        monkeypatch.setattr(CoreShards, "shard_backward", staticmethod(shard_backward))
        torch.manual_seed(7)
        return gradients(model, 2, accelerator)[1]

    main_late, worker_late = step("main"), step("worker")
    for key in main_late:
        assert torch.equal(main_late[key], worker_late[key]), key
    torch.manual_seed(8)
    other_seed = gradients(model, 2, accelerator)[1]
    assert not torch.equal(other_seed["items.embedding.weight"], main_late["items.embedding.weight"])  # it draws


def test_a_shard_generator_belongs_to_its_own_thread():
    seen = []
    shard_generator = torch.Generator()
    with drawing_from(shard_generator):
        thread = threading.Thread(target=lambda: seen.append(generator()))
        thread.start()
        thread.join()
        assert generator() is shard_generator
    assert seen == [None] and generator() is None


def test_each_shard_computes_on_its_share_of_the_threads_for_the_epoch():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with CoreShards(2) as shards:
            with shards.threads_set():
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 2
        with CoreShards(1) as shards, shards.threads_set():
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_batches_are_split_only_where_it_applies(monkeypatch):
    accelerator = make_accelerator(TrainConfig())
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    sasrec, bert4rec = small_model("sasrec", 0.0), small_model("bert4rec", 0.0)
    assert shard_count(0, sasrec, 256, accelerator) == 2  # one per torch thread
    assert shard_count(0, sasrec, 100, accelerator) == 1  # shards of 50 would be under MIN_SHARD
    assert shard_count(3, sasrec, 32, accelerator) == 3  # asked for
    assert shard_count(2, bert4rec, 256, accelerator) == 1  # its loss is a mean over masked positions
    assert shard_count(2, torch.nn.Linear(2, 2), 256, accelerator) == 1  # no per-example loss declared
    assert shard_count(2, sasrec, 256, accelerator_on("cpu", 1)) == 2
    assert shard_count(2, sasrec, 256, accelerator_on("cuda", 1)) == 1  # a GPU computes the whole batch at once
    assert shard_count(2, sasrec, 256, accelerator_on("cpu", 2)) == 1  # each process already has its own core


def accelerator_on(device: str, processes: int) -> SimpleNamespace:
    """What shard_count asks of an Accelerator, for devices and process counts this machine may not have."""
    return SimpleNamespace(device=torch.device(device), num_processes=processes, unwrap_model=lambda model: model)
