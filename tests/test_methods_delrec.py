"""DELRec on tiny models: the paper's prompts, the verbalizer, what trains in each stage, AdaLoRA's allocation, the
loss weighting, resuming, metric bounds, bad input and the two CLI stages end to end."""

import pytest
import torch
from llm_fixtures import killed_on_call, tiny_llama  # noqa: F401  (fixtures)
from transformers import AutoTokenizer
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.methods import delrec
from seqrec.methods.delrec import (SOFT_PROMPT_MARK, DELRecModel, PromptBuilder, PromptSet, TaskWeighting,
                                   distill_pattern, finetune, load_llm, random_soft_prompt, title_table)
from seqrec.report.tables import ndcg_bounds
from seqrec.recsys.runner import train_model
from seqrec.store import open_store

TITLES = [""] + [f"Item number {i}" for i in range(1, 25)]
SMALL = dict(soft_tokens=4, candidates=5, top_h=3, icl_examples=2, max_examples=24, valid_examples=8, epochs=2,
             batch_size=4, warmup_steps=2)
STAGE2 = dict(candidates=5, max_examples=24, valid_examples=8, test_examples=12, epochs=2, batch_size=4,
              warmup_steps=2)


@pytest.fixture
def teacher(walk):
    (run_id,) = train_model("sasrec", walk.name, seeds=[0], hidden=16, heads=2, layers=1, epochs=2, eval="sampled:4")
    return run_id


def builder(tiny_llama, pattern=SOFT_PROMPT_MARK, soft_tokens=3):
    return PromptBuilder(TITLES, AutoTokenizer.from_pretrained(tiny_llama), "SASRec", "item", pattern, soft_tokens,
                         seed=0)


# prompts ------------------------------------------------------------------------------------------------------------
def test_temporal_analysis_masks_the_most_recent_item_and_gives_the_next(tiny_llama):
    prompt = builder(tiny_llama).temporal_analysis([1, 2, 3, 4, 5], 6, [10, 11, 12], icl=2)
    label = prompt.candidates[prompt.label]
    assert label == 5  # the most recent item, not the next one
    history_line = next(line for line in prompt.text.splitlines() if line.startswith("The history is"))
    assert history_line == ('The history is: "Item number 1", "Item number 2", "Item number 3", "Item number 4", '
                            '[MASK]. The next item after [MASK] is "Item number 6".')
    examples = [line for line in prompt.text.splitlines() if line.startswith("In the first")]
    assert examples == ['In the first 2 items of the history, the most recent item is "Item number 2" and the next '
                        'item is "Item number 3".',
                        'In the first 3 items of the history, the most recent item is "Item number 3" and the next '
                        'item is "Item number 4".']
    assert sum('"Item number 5"' in line for line in prompt.text.splitlines()) == 1  # only as a candidate
    assert sorted(prompt.candidates) == [5, 10, 11, 12]


def test_pattern_simulating_labels_the_teachers_top_1_not_the_ground_truth(tiny_llama):
    prompt = builder(tiny_llama).pattern_simulating([1, 2, 3], top=[7, 8, 9], negatives=[20, 21])
    assert prompt.candidates[prompt.label] == 7
    assert 'the SASRec model recommends: "Item number 8", "Item number 9".' in prompt.text


def test_the_soft_prompt_follows_the_instruction_and_ablations_change_the_sentence(tiny_llama):
    prompt = builder(tiny_llama, soft_tokens=3).recommendation([1, 2], 3, [9, 10])
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    start = prompt.ids.index(-1)
    assert prompt.ids[start:start + 3] == [-1, -2, -3] and sum(token < 0 for token in prompt.ids) == 3
    assert tokenizer.decode(prompt.ids[:start]).endswith("The recommendation pattern of the SASRec model is: ")
    without = builder(tiny_llama, pattern="").recommendation([1, 2], 3, [9, 10])
    assert -1 not in without.ids and "pattern" not in without.text
    described = builder(tiny_llama, pattern=delrec.PATTERN_DESCRIPTIONS["sasrec"]).recommendation([1, 2], 3, [9])
    assert "self-attention" in described.text and -1 not in described.ids


CHAT_TEMPLATE = ("{% for message in messages %}<|{{ message.role }}|>{{ message.content }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def test_a_chat_prompt_is_one_user_turn_with_the_soft_prompt_inside_and_the_answer_after_it(tiny_llama):
    make = builder(tiny_llama)
    make.tokenizer.chat_template = CHAT_TEMPLATE
    make.chat = True
    prompt = make.recommendation([1, 2], 3, [9, 10])
    assert prompt.text.startswith("<|user|>Refer to the recommendation pattern")
    assert prompt.text.endswith("might be:<|end|><|assistant|>")
    assert sum(token < 0 for token in prompt.ids) == 3
    assert make.tokenizer.decode(prompt.ids[-40:]).replace(" ", "").endswith("<|end|><|assistant|>")  # answer next


def test_a_chat_prompt_for_a_model_without_a_chat_template_is_refused(teacher, walk, tiny_llama):
    result = CliRunner().invoke(app, ["delrec", "distill", "--model", str(tiny_llama), "--dataset", walk.name,
                                      "--teacher", str(teacher), "--prompt-format", "chat"])
    assert result.exit_code == 2 and "has no chat template" in " ".join(result.output.split())
    assert not open_store().list_runs(kind=delrec.DISTILL_KIND)


def test_one_soft_prompt_per_task_gives_each_task_its_own_vectors(tiny_llama):
    make = PromptBuilder(TITLES, AutoTokenizer.from_pretrained(tiny_llama), "SASRec", "item", SOFT_PROMPT_MARK, 3,
                         seed=0, soft_offsets={"delrec_ta": 0, "delrec_rps": 3})
    ta = make.temporal_analysis([1, 2, 3, 4], 5, [10, 11], icl=1)
    rps = make.pattern_simulating([1, 2, 3], top=[7, 8], negatives=[20])
    assert [token for token in ta.ids if token < 0] == [-1, -2, -3]
    assert [token for token in rps.ids if token < 0] == [-4, -5, -6]
    batch = PromptSet([(ta, rps)], 0).collate([(ta, rps)])
    assert sorted(batch[2][batch[2] >= 0].tolist()) == [0, 1, 2] and sorted(batch[7][batch[7] >= 0].tolist()) == [
        3, 4, 5]


def test_titles_are_quoted_on_one_line():
    assert delrec.quoted('A "quoted"\n title\x00') == "\"A 'quoted' title\""


# the verbalizer -----------------------------------------------------------------------------------------------------
def scoring_model(tiny_llama, verbalizer="title"):
    llm, tokenizer = load_llm(str(tiny_llama))
    return DELRecModel(llm, random_soft_prompt(llm, 3, 0), title_table(tokenizer, TITLES, 32, 0), verbalizer,
                       train_soft_prompt=True).eval()


def separate_scores(model, prompt):
    """Each candidate's full prompt + title run on its own, without padding or a shared cache."""
    llm = model.llm
    ids = torch.tensor(prompt.ids)
    row = []
    for item in prompt.candidates:
        title = model.title_ids[item, :model.title_lengths[item]]
        embeddings = model.input_embeddings(ids.clamp(min=0)[None], torch.where(ids < 0, torch.cumsum(ids < 0, 0) - 1,
                                                                                -1)[None])[0]
        full = torch.cat([embeddings, llm.get_input_embeddings()(title)])[None]
        logp = llm(inputs_embeds=full).logits[0].float().log_softmax(-1)
        row.append(logp[len(ids) - 1:len(ids) - 1 + len(title)].gather(1, title[:, None]).mean())
    return torch.stack(row)


def saved_tiny(folder, model_class, config, tokenizer):
    """A seeded random ``model_class(config)`` saved with ``tokenizer`` into ``folder``."""
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory):
    """A tiny Gemma 3: sliding-window layers (a window shorter than a prompt) between full-attention ones."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from seqrec.llm.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=6,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=256,
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    return saved_tiny(tmp_path_factory.mktemp("tiny") / "gemma3", Gemma3ForCausalLM, config, tokenizer)


def two_prompts(folder):
    make = builder(folder)
    prompts = [make.recommendation([1, 2, 3], 4, [5, 16, 22, 8]), make.recommendation([9, 10, 11, 12, 13], 14,
                                                                                       [1, 2, 3, 20])]
    return prompts, PromptSet([(prompt,) for prompt in prompts], 0).collate([(prompt,) for prompt in prompts])


@pytest.mark.parametrize("family", ["tiny_llama", "tiny_gemma3"])
def test_shared_prefix_scoring_equals_scoring_each_full_prompt(family, request):
    folder = request.getfixturevalue(family)
    model = scoring_model(folder)
    prompts, batch = two_prompts(folder)
    with torch.no_grad():
        shared = model.scores(*batch[:4])
        separate = torch.stack([separate_scores(model, prompt) for prompt in prompts])
    assert torch.allclose(shared, separate, atol=1e-5)


def test_shared_prefix_scoring_gives_the_soft_prompt_the_gradient_of_separate_scoring(tiny_llama):
    model = scoring_model(tiny_llama)
    prompts, batch = two_prompts(tiny_llama)
    weights = torch.randn(2, 5, generator=torch.Generator().manual_seed(0))
    (model.scores(*batch[:4]) * weights).sum().backward()
    shared = model.soft_prompt.grad.clone()
    model.soft_prompt.grad = None
    (torch.stack([separate_scores(model, prompt) for prompt in prompts]) * weights).sum().backward()
    assert torch.allclose(shared, model.soft_prompt.grad, atol=1e-5)


def test_the_first_token_verbalizer_ties_titles_that_share_a_first_token(tiny_llama):
    model = scoring_model(tiny_llama, "first_token")
    prompt = builder(tiny_llama).recommendation([1, 2, 3], 4, [5, 6, 7])
    with torch.no_grad():
        scores = model.scores(*PromptSet([(prompt,)], 0).collate([(prompt,)])[:4])
    assert torch.allclose(scores, scores[:, :1].expand_as(scores))  # every title starts with " Item"


# training -----------------------------------------------------------------------------------------------------------
def test_dynamic_weights_follow_loss_ratio_over_gradient_norm():
    weighting = TaskWeighting(2)
    parameter = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    first, second = (parameter ** 2).sum(), 3 * parameter.sum()
    loss = weighting([first, second], [parameter])
    norms = torch.tensor([torch.tensor([2.0, 4.0]).norm(), torch.tensor([3.0, 3.0]).norm()])
    lambdas = 2 * (1 / norms) / (1 / norms).sum()  # first step: both loss ratios are 1
    assert loss.item() == pytest.approx((lambdas * torch.tensor([5.0, 9.0])).sum().item(), rel=1e-5)
    loss.backward()
    expected = lambdas[0] * torch.tensor([2.0, 4.0]) + lambdas[1] * torch.tensor([3.0, 3.0])
    assert torch.allclose(parameter.grad, expected)


@pytest.mark.slow
def test_stage_1_trains_only_the_soft_prompt_and_stage_2_keeps_it_frozen(teacher, walk, tiny_llama, monkeypatch):
    trained = {}
    original = delrec.StepSchedule.optimizer

    def recording(self, parameters):
        trained.setdefault("stages", []).append(len(parameters))
        trained.setdefault("shapes", []).append([tuple(p.shape) for p in parameters])
        return original(self, parameters)

    monkeypatch.setattr(delrec.StepSchedule, "optimizer", recording)
    distilled = distill_pattern(str(tiny_llama), walk.name, teacher, **SMALL)
    soft_before = torch.load(open_store().artifacts(distilled, kind="soft-prompt")[0].path)["soft_prompt"]
    assert trained["shapes"][0] == [(4, 32)]  # stage 1: the soft prompt alone
    tuned = finetune(distilled, **STAGE2)
    assert (4, 32) not in trained["shapes"][1] and trained["shapes"][1]  # stage 2: adapters only
    soft_after = torch.load(open_store().artifacts(tuned, kind="soft-prompt")[0].path)["soft_prompt"]
    assert torch.equal(soft_before, soft_after)


def test_adalora_allocates_after_every_optimizer_step(teacher, walk, tiny_llama, monkeypatch):
    steps = []
    from seqrec.training import lora

    original = lora.adalora_step
    monkeypatch.setattr(lora, "adalora_step", lambda model, step: (steps.append(step), original(model, step)))
    tuned = finetune(model=str(tiny_llama), dataset=walk.name, teacher=teacher, ablation="w_usp", soft_tokens=4,
                     **STAGE2)
    per_epoch = -(-STAGE2["max_examples"] // STAGE2["batch_size"])
    assert steps == list(range(STAGE2["epochs"] * per_epoch))
    assert open_store().get_run(tuned).status == "finished"


@pytest.mark.slow
def test_an_interrupted_finetune_resumes_to_the_same_metrics(teacher, walk, tiny_llama):
    options = dict(model=str(tiny_llama), dataset=walk.name, teacher=teacher, ablation="w_usp", soft_tokens=4,
                   **STAGE2)
    store = open_store()
    # validations: step 0, epoch 1 (checkpointed), then killed in epoch 2's
    with killed_on_call(delrec.CandidateEvaluation, "__call__", call=3), pytest.raises(KeyboardInterrupt):
        finetune(**options)
    (interrupted,) = store.list_runs(kind=delrec.FINETUNE_KIND, status="interrupted")
    assert finetune(resume=interrupted.id) == interrupted.id
    resumed = {split: store.final_metrics(interrupted.id)[split] for split in ("valid", "test")}
    store.delete_run(interrupted.id)
    whole = finetune(**options)
    assert whole != interrupted.id
    assert {split: store.final_metrics(whole)[split] for split in ("valid", "test")} == resumed


# evaluation ---------------------------------------------------------------------------------------------------------
def test_ndcg_stays_within_what_hr_allows_and_the_papers_does_not():
    paper = {"hr@1": 0.3701, "hr@5": 0.6919, "ndcg@5": 0.5237, "hr@10": 0.8386, "ndcg@10": 0.5950}
    highest = ndcg_bounds(paper)["ndcg@10"][1]
    assert highest == pytest.approx(0.5760, abs=1e-4) and highest < paper["ndcg@10"]
    ranks = torch.tensor([0, 1, 3, 6, 9, 12, 2, 0])
    from seqrec.recsys.metrics import sampled_metrics

    ours = {key: float(value.mean()) for key, value in sampled_metrics(ranks).items()}
    for key, (low, high) in ndcg_bounds(ours).items():
        assert low - 1e-9 <= ours[key] <= high + 1e-9


# the command line ---------------------------------------------------------------------------------------------------
def flags(options: dict) -> list[str]:
    return [part for key, value in options.items() for part in (f"--{key.replace('_', '-')}", str(value))]


@pytest.mark.slow
def test_both_stages_run_from_the_cli_and_log_test_metrics_within_bounds(teacher, walk, tiny_llama):
    runner = CliRunner()
    result = runner.invoke(app, ["delrec", "distill", "--model", str(tiny_llama), "--dataset", walk.name,
                                 "--teacher", str(teacher), *flags(SMALL)])
    assert result.exit_code == 0, result.output
    (distilled,) = open_store().list_runs(kind=delrec.DISTILL_KIND)
    valid = {metric.key for metric in open_store().metrics(distilled.id, split="valid")}
    assert {"loss_ta", "loss_rps", "hr@1_ta", "hr@1_rps", "neg_loss"} <= valid
    result = runner.invoke(app, ["delrec", "finetune", "--distilled", str(distilled.id), *flags(STAGE2)])
    assert result.exit_code == 0, result.output
    (tuned,) = open_store().list_runs(kind=delrec.FINETUNE_KIND)
    assert tuned.status == "finished" and tuned.config["variant"] == "none"
    test = open_store().final_metrics(tuned.id)["test"]
    for key, (low, high) in ndcg_bounds(test).items():
        assert low - 1e-6 <= test[key] <= high + 1e-6
    assert [link.input_run_id for link in open_store().inputs(tuned.id)] == [distilled.id]
    assert not (open_store().run_dir(tuned.id) / "checkpoint").exists()


@pytest.mark.parametrize("command, extra, message", [
    ("distill", ["--soft-tokens", "0"], "soft_tokens = 0 is out of range"),
    ("distill", ["--top-h", "99"], "--top-h 99 is larger than the catalogue"),
    ("distill", ["--ablation", "w_ulsr"], "ablation w_ulsr changes stage 2"),
    ("distill", ["--ablation", "w_xyz"], "ablation must be one of"),
    ("distill", ["--candidates", "12"], "negative candidates from; lower --candidates or --top-h"),
    ("finetune", ["--ablation", "w_usp", "--candidates", "30"], "--candidates 30 is larger than the catalogue"),
    ("finetune", ["--ablation", "none"], "needs --distilled"),
])
def test_bad_input_is_one_clear_line_and_writes_no_run(teacher, walk, tiny_llama, command, extra, message):
    before = len(open_store().list_runs())
    result = CliRunner().invoke(app, ["delrec", command, "--model", str(tiny_llama), "--dataset", walk.name,
                                      "--teacher", str(teacher), *extra])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert len(open_store().list_runs()) == before


def test_a_teacher_that_is_not_a_finished_train_run_is_refused(teacher, walk, tiny_llama):
    distilled = distill_pattern(str(tiny_llama), walk.name, teacher, **{**SMALL, "epochs": 1})
    result = CliRunner().invoke(app, ["delrec", "distill", "--model", str(tiny_llama), "--dataset", walk.name,
                                      "--teacher", str(distilled)])
    assert result.exit_code == 2 and "needs a finished `seqrec train` run" in " ".join(result.output.split())


def test_a_soft_prompt_from_another_llm_is_refused(teacher, walk, tiny_llama, tmp_path):
    from seqrec.llm.tiny import build_tiny_model

    distilled = distill_pattern(str(tiny_llama), walk.name, teacher, **{**SMALL, "epochs": 1})
    wider = build_tiny_model(tmp_path / "wider", "llama", hidden=48)
    result = CliRunner().invoke(app, ["delrec", "finetune", "--distilled", str(distilled), "--model", str(wider)])
    assert result.exit_code == 2, result.output
    assert "width 32" in result.output and "width 48" in " ".join(result.output.split())


# encoder-decoder LLMs -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory):
    from transformers import T5Config, T5ForConditionalGeneration

    from seqrec.llm.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4,
                      dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    return saved_tiny(tmp_path_factory.mktemp("tiny") / "t5", T5ForConditionalGeneration, config, tokenizer)


def test_an_encoder_decoder_reads_the_prompt_once_and_scores_titles_in_the_decoder(tiny_t5):
    model = scoring_model(tiny_t5)
    make = builder(tiny_t5)
    prompts = [make.recommendation([1, 2, 3], 4, [5, 16, 22]), make.recommendation([9, 10, 11, 12], 14, [1, 2, 3])]
    batch = PromptSet([(prompt,) for prompt in prompts], 0).collate([(prompt,) for prompt in prompts])
    llm = model.llm
    with torch.no_grad():
        shared = model.scores(*batch[:4])
        separate = []
        for prompt in prompts:
            ids = torch.tensor(prompt.ids)
            soft_index = torch.where(ids < 0, torch.cumsum(ids < 0, 0) - 1, -1)
            embeddings = model.input_embeddings(ids.clamp(min=0)[None], soft_index[None])
            row = []
            for item in prompt.candidates:
                title = model.title_ids[item, :model.title_lengths[item]]
                decoder_ids = torch.cat([torch.tensor([llm.config.decoder_start_token_id]), title[:-1]])[None]
                logp = llm(inputs_embeds=embeddings, decoder_input_ids=decoder_ids).logits[0].log_softmax(-1)
                row.append(logp.gather(1, title[:, None]).mean())
            separate.append(torch.stack(row))
    assert torch.allclose(shared, torch.stack(separate), atol=1e-5)
    assert delrec.attention_targets(llm) == ["q", "v"]


# resuming stage 1 and the ablations ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_interrupted_distillation_resumes_to_the_same_soft_prompt(teacher, walk, tiny_llama):
    store = open_store()
    with killed_on_call(delrec.CandidateEvaluation, "__call__", call=3), pytest.raises(KeyboardInterrupt):
        distill_pattern(str(tiny_llama), walk.name, teacher, **SMALL)
    (interrupted,) = store.list_runs(kind=delrec.DISTILL_KIND, status="interrupted")
    assert distill_pattern(None, None, None, resume=interrupted.id) == interrupted.id
    resumed = torch.load(store.artifacts(interrupted.id, kind="soft-prompt")[0].path)["soft_prompt"]
    valid = store.final_metrics(interrupted.id)["valid"]
    store.delete_run(interrupted.id)
    whole = distill_pattern(str(tiny_llama), walk.name, teacher, **SMALL)
    assert torch.equal(torch.load(store.artifacts(whole, kind="soft-prompt")[0].path)["soft_prompt"], resumed)
    assert store.final_metrics(whole)["valid"] == valid


@pytest.mark.slow
def test_the_ablations_change_what_each_stage_trains_and_shows(teacher, walk, tiny_llama):
    store = open_store()
    one_epoch = {**SMALL, "epochs": 1}
    only_ta = distill_pattern(str(tiny_llama), walk.name, teacher, ablation="wo_rps", **one_epoch)
    assert {metric.key for metric in store.metrics(only_ta, split="valid")} >= {"loss_ta"}
    assert "loss_rps" not in {metric.key for metric in store.metrics(only_ta, split="valid")}
    updated = distill_pattern(str(tiny_llama), walk.name, teacher, ablation="w_udpsm", **one_epoch)
    assert store.artifacts(updated, kind="model")  # the LLM changed in stage 1: stage 2 starts from it
    stage2 = {**STAGE2, "epochs": 1}
    after_udpsm = finetune(updated, **stage2)
    assert store.get_run(after_udpsm).config["variant"] == "w_udpsm"
    per_task = distill_pattern(str(tiny_llama), walk.name, teacher, soft_prompts="per_task", **one_epoch)
    shape = torch.load(store.artifacts(per_task, kind="soft-prompt")[0].path)["soft_prompt"].shape
    assert tuple(shape) == (2 * SMALL["soft_tokens"], 32)  # TA's vectors, then RPS's; stage 2 shows both
    assert store.get_run(finetune(per_task, **stage2)).status == "finished"
    ulsr = finetune(updated, ablation="w_ulsr", **stage2)
    distilled_prompt = torch.load(store.artifacts(updated, kind="soft-prompt")[0].path)["soft_prompt"]
    assert not torch.equal(torch.load(store.artifacts(ulsr, kind="soft-prompt")[0].path)["soft_prompt"],
                           distilled_prompt)
    for ablation in ("wo_sp", "w_mcp"):
        run_id = finetune(model=str(tiny_llama), dataset=walk.name, teacher=teacher, ablation=ablation, **stage2)
        assert store.get_run(run_id).status == "finished" and not store.artifacts(run_id, kind="soft-prompt")


def test_a_saved_adapter_lists_its_target_modules_in_order(tmp_path, tiny_llama):
    """peft keeps target_modules as a set: written unsorted, the same weights would give another sha256 in
    another process."""
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from seqrec.methods.delrec import save_adapter

    llm = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                         LoraConfig(r=2, target_modules=["v_proj", "q_proj", "k_proj"]))
    folder = save_adapter(llm, tmp_path / "adapter")
    assert json.loads((folder / "adapter_config.json").read_text())["target_modules"] == ["k_proj", "q_proj", "v_proj"]
