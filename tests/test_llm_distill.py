"""Teacher-to-student distillation on tiny Llama/Qwen2 models: the loss terms, the tracked run, the teacher cache,
resuming, shallower students, and bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from llm_fixtures import TITLES, killed_on_call, movies, tiny_llama, tiny_qwen2  # noqa: F401  (fixtures)
from transformers import AutoModel
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.llm import distill as distill_module
from seqrec.llm.distill import DistillConfig, DistillationObjective, KLValidation, distill, keep_layers, load_student
from seqrec.llm.embed import pad_token_id, tokenize
from seqrec.llm.encoder import ItemTextEncoder, contrastive_loss, similarity_kl
from seqrec.llm.tiny import build_tiny_model
from seqrec.recsys.runner import train_model
from seqrec.store import open_store

FAST = dict(epochs=4, batch_size=6, lr=1e-3, max_length=16, patience=10)


@pytest.fixture(scope="module")
def wide_qwen2(tmp_path_factory):
    """A student of another family and width than the teacher (tiny_llama is 32 wide)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2-48", "qwen2", hidden=48, layers=4, seed=1)


def test_the_kl_term_is_zero_when_student_equals_teacher_and_positive_otherwise():
    torch.manual_seed(0)
    teacher = torch.randn(8, 16)
    assert similarity_kl(teacher, teacher, tau=0.05).item() == pytest.approx(0.0, abs=1e-6)
    assert similarity_kl(teacher, 3 * teacher, tau=0.05).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert similarity_kl(teacher, torch.randn(8, 40), tau=0.05).item() > 0.1  # any student width


def test_the_contrastive_term_prefers_matching_views():
    torch.manual_seed(0)
    views = torch.randn(6, 8)
    assert contrastive_loss(views, views, 0.05) < contrastive_loss(views, torch.randn(6, 8), 0.05)


def test_distillation_lowers_the_kl_and_yields_a_student_sasrec_can_use(tiny_llama, wide_qwen2, movies):
    run_id = distill(str(tiny_llama), str(wide_qwen2), movies, **FAST)
    store = open_store()
    run = store.get_run(run_id)
    assert run.status == "finished" and run.kind == "distill"
    kl = [metric.value for metric in store.metrics(run_id, split="valid", key="kl")]
    assert len(kl) == FAST["epochs"] + 1 and min(kl[1:]) < kl[0]  # step 0: the untrained student
    assert [m.value for m in store.metrics(run_id, split="train", key="loss")]

    embeddings = np.load(store.artifacts(run_id, kind="item-embeddings")[0].path)
    assert embeddings.shape == (13, 48) and not embeddings[0].any() and np.abs(embeddings[1:]).sum(1).all()
    student_folder = store.artifacts(run_id, kind="model")[0].path
    assert AutoModel.from_pretrained(student_folder).config.num_hidden_layers == 4
    # lineage: the teacher's cached embed run is the input
    (teacher_run,) = store.list_runs(kind="embed")
    assert [link.input_run_id for link in store.inputs(run_id)] == [teacher_run.id]

    (sasrec,) = train_model("sasrec", movies, seeds=[0], item_emb=f"run:{run_id}", hidden=16, heads=2, layers=1,
                            epochs=1)
    assert store.get_run(sasrec).status == "finished"


def test_the_teacher_is_embedded_once_and_an_identical_request_is_reused(tiny_llama, wide_qwen2, movies):
    first = distill(str(tiny_llama), str(wide_qwen2), movies, **{**FAST, "epochs": 1})
    assert distill(str(tiny_llama), str(wide_qwen2), movies, **{**FAST, "epochs": 1}) == first
    second = distill(str(tiny_llama), str(wide_qwen2), movies, **{**FAST, "epochs": 1, "lr": 2e-3})
    assert second != first
    assert len(open_store().list_runs(kind="embed")) == 1


def test_a_killed_distillation_resumes_to_the_same_result(tiny_llama, wide_qwen2, movies):
    options = {**FAST, "epochs": 3}
    uninterrupted = distill(str(tiny_llama), str(wide_qwen2), movies, seed=1, **options)
    store = open_store()
    expected = np.load(store.artifacts(uninterrupted, kind="item-embeddings")[0].path)
    store.delete_run(uninterrupted)

    # validations: step 0, epoch 1 (checkpointed), then killed in epoch 2's
    with killed_on_call(distill_module.KLValidation, "__call__", call=3), pytest.raises(KeyboardInterrupt):
        distill(str(tiny_llama), str(wide_qwen2), movies, seed=1, **options)
    (interrupted,) = store.list_runs(kind="distill", status="interrupted")
    result = CliRunner().invoke(app, ["distill", "--teacher", "x", "--student", "y", "--resume", str(interrupted.id)])
    assert result.exit_code == 0, result.output
    assert store.get_run(interrupted.id).status == "finished"
    resumed = np.load(store.artifacts(interrupted.id, kind="item-embeddings")[0].path)
    np.testing.assert_allclose(resumed, expected, atol=1e-5)
    result = CliRunner().invoke(app, ["distill", "--teacher", "x", "--student", "y", "--resume", str(interrupted.id)])
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_a_shallower_student_is_built_from_evenly_spaced_layers(wide_qwen2, tiny_llama, movies):
    backbone = AutoModel.from_pretrained(wide_qwen2)
    layers = list(backbone.layers)
    assert keep_layers(backbone, 2) == [0, 3]
    assert list(backbone.layers) == [layers[0], layers[3]] and backbone.config.num_hidden_layers == 2
    run_id = distill(str(tiny_llama), str(wide_qwen2), movies, student_layers=2, lora_rank=4,
                     **{**FAST, "epochs": 1})
    folder = open_store().artifacts(run_id, kind="model")[0].path
    student = AutoModel.from_pretrained(folder)
    assert student.config.num_hidden_layers == 2 and not any("lora" in name for name, _ in student.named_parameters())


@pytest.mark.parametrize("args, message", [
    (["--lambda-align", "1"], "student is 48 wide and the teacher 32: add --projection"),
    (["--projection"], "--projection only serves the alignment term"),
    (["--tau", "0"], "tau = 0.0 is out of range"),
    (["--student-layers", "9"], "the student has 4 layers"),
    (["--lambda-kl", "0", "--lambda-ic", "0"], "every loss weight is 0"),
    (["--train-layers", "2", "--lora-rank", "4"], "choose one of --train-layers"),
])
def test_bad_options_are_one_clear_line(tiny_llama, wide_qwen2, movies, args, message):
    result = CliRunner().invoke(app, ["distill", "--teacher", str(tiny_llama), "--student", str(wide_qwen2),
                                      "--dataset", movies, "--epochs", "1", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not open_store().list_runs(kind="distill", status="finished")


def test_an_unknown_teacher_suggests_close_names(movies):
    result = CliRunner().invoke(app, ["distill", "--teacher", "qwen2-05b", "--student", "smollm2-135m",
                                      "--dataset", movies])
    assert result.exit_code == 2 and "did you mean qwen2-0.5b" in result.output


def test_training_only_the_top_layers_gives_the_same_embeddings_from_cached_inputs(wide_qwen2, tiny_llama, movies):
    from transformers import AutoTokenizer

    from seqrec.llm.embed import tokenize
    from seqrec.llm.encoder import ItemTextEncoder

    tokenizer = AutoTokenizer.from_pretrained(wide_qwen2)
    token_ids = tokenize(tokenizer, ["Heat (1995)", "Toy Story 2 (1999)", "Up (2009)"], "mean", 16)
    whole = ItemTextEncoder(AutoModel.from_pretrained(wide_qwen2), token_ids, 0, "mean")
    top = ItemTextEncoder(AutoModel.from_pretrained(wide_qwen2), token_ids, 0, "mean", train_layers=1)
    torch.testing.assert_close(top.embed_all(), whole.embed_all(), atol=1e-5, rtol=1e-4)
    assert top.prefix.shape == (int(top.lengths.sum()), top.width)  # a row per real token: no padding kept
    assert "prefix" in dict(top.named_buffers()) and "prefix" not in top.state_dict()  # moves with it, never saved
    trainable = {name for name, parameter in top.named_parameters() if parameter.requires_grad}
    assert trainable and all(name.startswith(("backbone.layers.0.", "backbone.norm.")) for name in trainable)
    assert len(top.full_backbone().layers) == 4 and top.backbone.config.num_hidden_layers == 4

    run_id = distill(str(tiny_llama), str(wide_qwen2), movies, train_layers=2, **FAST)
    store = open_store()
    kl = [metric.value for metric in store.metrics(run_id, split="valid", key="kl")]
    assert min(kl[1:]) < kl[0]
    student = AutoModel.from_pretrained(store.artifacts(run_id, kind="model")[0].path)
    original = AutoModel.from_pretrained(wide_qwen2)
    assert student.config.num_hidden_layers == 4
    torch.testing.assert_close(student.layers[0].mlp.up_proj.weight, original.layers[0].mlp.up_proj.weight)
    assert not torch.equal(student.layers[3].mlp.up_proj.weight, original.layers[3].mlp.up_proj.weight)


# the losses against their written definitions ---------------------------------------------------------------
def reference_kl(teacher, student, tau):
    """mean_i KL(P_i || Q_i), P_i / Q_i: softmax over j != i of cosine(i, j) / tau, teacher / student."""
    teacher, student = F.normalize(teacher, dim=-1), F.normalize(student, dim=-1)
    total = 0.0
    for i in range(len(teacher)):
        others = [j for j in range(len(teacher)) if j != i]
        p = torch.softmax(teacher[i] @ teacher[others].T / tau, 0)
        q = torch.softmax(student[i] @ student[others].T / tau, 0)
        total += (p * (p.log() - q.log())).sum()
    return total / len(teacher)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_similarity_kl_is_kl_of_teacher_to_student_off_the_diagonal(tau):
    torch.manual_seed(0)
    teacher, student = torch.randn(7, 16), torch.randn(7, 24)
    kl = similarity_kl(teacher, student, tau)
    assert kl.item() == pytest.approx(reference_kl(teacher, student, tau).item(), rel=1e-4)
    # KL is not symmetric: the teacher's distribution is the reference
    assert abs(reference_kl(student, teacher, tau).item() - kl.item()) > 1e-3


def test_contrastive_loss_is_infonce_on_cosines_over_temperature():
    torch.manual_seed(0)
    first, second = torch.randn(6, 8), torch.randn(6, 8)
    logits = F.cosine_similarity(first[:, None], second[None], dim=-1) / 0.2
    expected = F.cross_entropy(logits, torch.arange(6))
    assert contrastive_loss(first, second, 0.2).item() == pytest.approx(expected.item(), rel=1e-5)
    assert contrastive_loss(5 * first, second, 0.2).item() == pytest.approx(expected.item(), rel=1e-5)


def student_encoder(path, config):
    backbone, tokenizer = load_student(str(path), config)
    return ItemTextEncoder(backbone, tokenize(tokenizer, TITLES, "mean", 16), pad_token_id(tokenizer), "mean")


def test_the_distillation_loss_is_weighted_kl_teacher_to_student_plus_ic_over_two_dropout_views(tiny_qwen2):
    """lambda_kl * KL(teacher || first view) + lambda_ic * L_IC(first view, second view), at the configured tau."""
    config = DistillConfig(lambda_kl=1.0, lambda_ic=0.5, tau=0.1, ic_temperature=0.2, dropout=0.3)
    encoder = student_encoder(tiny_qwen2, config)
    torch.manual_seed(0)
    teacher = torch.randn(len(TITLES) + 1, 20)
    objective = DistillationObjective(encoder, teacher, config).train()
    items = torch.tensor([1, 3, 5, 7, 9, 11])
    torch.manual_seed(1)
    loss = objective(items)
    torch.manual_seed(1)
    first, second = encoder(items), encoder(items)
    assert not torch.allclose(first, second)  # dropout: two different views
    expected = 1.0 * reference_kl(teacher[items], first, 0.1) + 0.5 * contrastive_loss(first, second, 0.2)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


def test_the_kl_term_alone_trains_the_student(tiny_qwen2):
    """The student's side of the KL carries gradients (with L_IC off, nothing else would train it)."""
    config = DistillConfig(lambda_kl=1.0, lambda_ic=0.0)
    encoder = student_encoder(tiny_qwen2, config)
    objective = DistillationObjective(encoder, torch.randn(len(TITLES) + 1, 20), config)
    loss = objective(torch.arange(1, 8))
    assert loss.requires_grad
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_kl_validation_measures_kl_of_teacher_to_student(tiny_qwen2):
    config = DistillConfig(lambda_kl=1.0, lambda_ic=0.0, tau=0.2)
    encoder = student_encoder(tiny_qwen2, config)
    torch.manual_seed(0)
    teacher = torch.randn(len(TITLES) + 1, 20)
    objective = DistillationObjective(encoder, teacher, config)

    class Accelerator:
        device = "cpu"

        @staticmethod
        def unwrap_model(model):
            return model

    validation = KLValidation(len(TITLES), 5, seed=0)
    embeddings = encoder.embed_all()
    expected = np.mean([reference_kl(teacher[batch], embeddings[batch], 0.2).item() for batch in validation.batches])
    assert validation(objective, Accelerator())["kl"] == pytest.approx(expected, rel=1e-4)
