"""DELRec (the third paper): distil a conventional recommender's pattern into a soft prompt, then fine-tune the LLM.

Stage 1, ``distill_pattern``: N trainable vectors at the LLM's embedding width (random normal, the scale of its
token embeddings) sit after the instruction "The recommendation pattern of the {model} model is:". The LLM is
frozen; only the soft prompt trains, on two tasks built from every training prefix x_1..x_m (the m <= 10 most
recent items) and its next item y:

- Temporal Analysis (TA): in-context examples from the user's own sequence ("in the first j items the most recent
  item is x_j and the next is x_{j+1}", for the j just before m - 1, so none reveals x_m); then the history with
  x_m masked and y given; the label is the masked most recent item x_m.
- Recommendation Pattern Simulating (RPS): the conventional model's (a finished ``seqrec train`` run) top-h items
  for the history; the label is its top-1, the prompt shows the other h - 1.

Each prompt has 15 candidates: the label and 14 uniform random items outside the user's training items (RPS: also
outside the shown top-h), in a seeded random order. The loss of a task is the cross-entropy over its candidates'
verbalizer scores; L = lambda_TA L_TA + lambda_RPS L_RPS with the dynamic weights of ``TaskWeighting``.

Stage 2, ``finetune``: the prompt "Refer to the recommendation pattern of the {model} model ... is: [soft prompt].
The history is ... The candidate set is ... might be:" with stage 1's soft prompt frozen; the LLM trains through
AdaLoRA adapters on the attention query and value projections; cross-entropy on the ground truth among the
candidates. Validation and test rank the stored candidate sets (``--eval sampled:14``'s), so the conventional
baselines and DELRec are scored on the same candidates: HR@1/5/10, NDCG@5/10.

The verbalizer scores a candidate by its title's mean token log-likelihood after the prompt. The prompt (soft
prompt included) runs once; the 15 titles then run packed in one row after its key/value cache, each title masked
from the others, so the cache is never copied per candidate. The ``first_token`` verbalizer (the authors') takes
only the log-probability of a title's first token, so titles that share one (e.g. "The ...") tie, and ties count
against the label (pessimistic ranks).

Both stages use Lion with a linear warm-up. Encoder-decoder LLMs (T5) take the prompt in the encoder (run once)
and the titles in the decoder. Two options depart from the paper's defaults: ``prompt_format = "chat"`` puts every
prompt in the model's chat template (instruct models), and ``soft_prompts = "per_task"`` trains one soft prompt per
stage-1 task, as the authors' code does, and shows both in stage 2.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from seqrec.errors import SeqrecError
from seqrec.methods.delrec_options import (DISTILL_ABLATIONS, FINETUNE_ABLATIONS, MODEL_NAMES, DistillStageConfig,
                                           DistillTraining, FinetuneStageConfig, FinetuneTraining)
from seqrec.store import config_hash, open_store
from seqrec.training.options import resolve

SOFT_PROMPT_MARK = "\x00soft prompt\x00"  # where the soft prompt goes in a rendered prompt (titles cannot hold \x00)
TASKS = ("ta", "rps")
# w MCP: a hand-written description of each conventional model in place of the soft prompt.
PATTERN_DESCRIPTIONS = {
    "sasrec": "it embeds the items of the history in order, lets every position attend to the earlier ones with "
              "self-attention, and recommends the items most similar to the representation of the most recent "
              "position, so recent items weigh most",
    "gru4rec": "it reads the history in order with a recurrent GRU network, whose last hidden state summarises the "
               "user's current interest, and recommends the items most similar to that state",
    "caser": "it treats the embeddings of the most recent items as an image, applies horizontal and vertical "
             "convolutions to find union-level and point-level sequential patterns, and recommends the items most "
             "similar to the result",
    "bert4rec": "it encodes the history with bidirectional self-attention trained to fill in masked items, and "
                "recommends the items most similar to the representation of a mask after the most recent item",
}
DISTILL_KIND, FINETUNE_KIND = "delrec-distill", "delrec-finetune"
SOFT_PROMPT_ARTIFACT = "soft-prompt"


# options ------------------------------------------------------------------------------------------------------------
def resolve_distill(options: dict):
    """(DistillStageConfig, its loop config) from the user's options, every value checked."""
    stage, train = resolve("delrec distill", options, DistillStageConfig, DistillTraining, exclude=("metric",))
    if stage.ablation not in ("none", *DISTILL_ABLATIONS):
        raise SeqrecError(f"ablation {stage.ablation} changes stage 2 (give it to `seqrec delrec finetune`); distill "
                          f"takes none, {', '.join(DISTILL_ABLATIONS)}")
    return stage, train


def resolve_finetune(options: dict):
    stage, train = resolve("delrec finetune", options, FinetuneStageConfig, FinetuneTraining, exclude=("metric",))
    if stage.ablation not in ("none", *FINETUNE_ABLATIONS):
        raise SeqrecError(f"ablation {stage.ablation} changes stage 1 (give it to `seqrec delrec distill`); finetune "
                          f"takes none, {', '.join(FINETUNE_ABLATIONS)}")
    return stage, train


def distill_tasks(config: DistillStageConfig) -> tuple[str, ...]:
    return tuple(task for task in TASKS if config.ablation != f"wo_{task}")


def soft_prompt_offsets(config: DistillStageConfig, tasks: tuple[str, ...]) -> dict[str, int]:
    """per_task: each task's template shows its own block of soft_tokens vectors (TA first, then RPS); shared: {}.
    Stage 2 then shows the whole soft prompt, both blocks in that order."""
    if config.soft_prompts == "shared":
        return {}
    return {f"delrec_{task}": index * config.soft_tokens for index, task in enumerate(tasks)}


def check_prompt_format(config, model_path: str) -> None:
    """A chat prompt needs a tokenizer with a chat template (instruct models have one, base models often not)."""
    if config.prompt_format != "chat":
        return
    from transformers import AutoTokenizer

    if not AutoTokenizer.from_pretrained(model_path).chat_template:
        raise SeqrecError(f"--prompt-format chat: {model_path} has no chat template (a base model?); use "
                          "--prompt-format plain")


# prompts ------------------------------------------------------------------------------------------------------------
def quoted(title: str) -> str:
    """A title as prompt data: on one line, in double quotes (its own double quotes become single ones)."""
    return '"' + " ".join(title.replace("\x00", "").replace('"', "'").split()) + '"'


@dataclass
class Prompt:
    """One prompt: its text, its token ids (-1 - k where soft-prompt vector k goes), its candidate items in the
    order the prompt lists them, and the index of the label among them."""

    text: str
    ids: list[int]
    candidates: list[int]
    label: int


class PromptBuilder:
    """Renders the three prompts of the paper (TA, RPS, LSR) from item ids and tokenizes them.

    ``chat`` wraps a prompt in the tokenizer's chat template as one user turn, so that the answer follows the start
    of the assistant's turn (instruct models); otherwise the prompt is plain text (base models). ``soft_offsets``
    give each template the first soft-prompt vector it shows (one soft prompt per task); by default every prompt
    shows vectors 0..soft_tokens-1.
    """

    def __init__(self, titles: list[str], tokenizer, model_name: str, item_word: str, pattern: str,
                 soft_tokens: int, seed: int, chat: bool = False, soft_offsets: dict[str, int] | None = None):
        self.titles, self.tokenizer, self.model_name, self.item_word = titles, tokenizer, model_name, item_word
        self.pattern, self.soft_tokens, self.chat, self.soft_offsets = pattern, soft_tokens, chat, soft_offsets or {}
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> PromptBuilder:
        """Start the candidate orders afresh, so that a split's prompts do not depend on how many came before."""
        self.rng = np.random.default_rng(seed)
        return self

    def title(self, item: int) -> str:
        return quoted(self.titles[item])

    def render(self, template: str, label: int, negatives: list[int], **variables) -> Prompt:
        from seqrec.llm.prompts import render_prompt

        candidates = [label, *negatives]
        order = self.rng.permutation(len(candidates))
        candidates = [candidates[index] for index in order]
        text = render_prompt(template, model=self.model_name, item=self.item_word, pattern=self.pattern,
                             candidates=[self.title(item) for item in candidates], **variables).rstrip()
        if self.chat:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        ids = self.encode(text, self.soft_offsets.get(template, 0))
        return Prompt(text, ids, candidates, int(np.flatnonzero(order == 0)[0]))

    def encode(self, text: str, soft_offset: int = 0) -> list[int]:
        parts = text.split(SOFT_PROMPT_MARK)
        ids = self.tokenizer(parts[0], add_special_tokens=not self.chat)["input_ids"]  # a chat template has its own
        soft = [-1 - vector for vector in range(soft_offset, soft_offset + self.soft_tokens)]
        for part in parts[1:]:
            ids += soft + self.tokenizer(part, add_special_tokens=False)["input_ids"]
        return ids

    def temporal_analysis(self, window: list[int], next_item: int, negatives: list[int], icl: int) -> Prompt:
        """TA: the label is the most recent item x_m, masked; y (``next_item``) is given."""
        *shown, recent = window
        examples = [{"length": j, "recent": self.title(window[j - 1]), "next": self.title(window[j])}
                    for j in range(max(1, len(window) - 1 - icl), len(window) - 1)]
        return self.render("delrec_ta", recent, negatives, examples=examples,
                           history=[self.title(item) for item in shown], next=self.title(next_item))

    def pattern_simulating(self, window: list[int], top: list[int], negatives: list[int]) -> Prompt:
        """RPS: the label is the conventional model's top-1; the prompt shows its other top items."""
        return self.render("delrec_rps", top[0], negatives, history=[self.title(item) for item in window],
                           others=[self.title(item) for item in top[1:]])

    def recommendation(self, window: list[int], target: int, negatives: list[int]) -> Prompt:
        """LSR (stage 2): the label is the ground-truth next item."""
        return self.render("delrec_lsr", target, negatives, history=[self.title(item) for item in window])


def sample_negatives(rng: np.random.Generator, num_items: int, excluded: set[int], count: int) -> list[int]:
    """``count`` distinct items drawn uniformly from 1..num_items outside ``excluded``."""
    if num_items - len(excluded) < count:
        raise SeqrecError(f"a user has only {num_items - len(excluded)} items to draw {count} negative candidates "
                          "from; lower --candidates")
    chosen: list[int] = []
    taken = set(excluded)
    while len(chosen) < count:
        for item in rng.integers(1, num_items + 1, size=2 * count).tolist():
            if item not in taken:
                taken.add(item)
                chosen.append(item)
                if len(chosen) == count:
                    break
    return chosen


# the conventional model ---------------------------------------------------------------------------------------------
def check_teacher(run_id: int, dataset: str):
    """The finished ``seqrec train`` run whose pattern is distilled, on the same dataset."""
    run = open_store().get_run(run_id)
    if run.kind != "train" or run.status != "finished":
        raise SeqrecError(f"--teacher {run_id}: run {run_id} is a {run.status} {run.kind} run; DELRec needs a finished "
                          "`seqrec train` run (SASRec, GRU4Rec or Caser)")
    if run.dataset != dataset:
        raise SeqrecError(f"--teacher {run_id} was trained on {run.dataset}, not {dataset}")
    models = open_store().artifacts(run_id, kind="model")
    if not models or not Path(models[-1].path).exists():
        raise SeqrecError(f"--teacher {run_id}: the run has no saved model")
    return run, models[-1]


def load_teacher(run, artifact, data):
    from seqrec.recsys.runner import trained_recommender

    return trained_recommender(run.config, Path(artifact.path), data)


@torch.inference_mode()
def teacher_top(model, users: torch.Tensor, histories: torch.Tensor, h: int, batch_size: int = 512) -> np.ndarray:
    """[examples, h]: the conventional model's h best items for each history (padding never ranked)."""
    rows = [model.scores(users[start:start + batch_size], histories[start:start + batch_size]).topk(h, dim=1).indices
            for start in range(0, len(users), batch_size)]
    return torch.cat(rows).numpy()


# prompt sets --------------------------------------------------------------------------------------------------------
def training_prefixes(data, count: int | None, seed: int, min_length: int = 1):
    """(users, histories left-padded to the dataset's max_len, targets) of every training prefix with at least
    ``min_length`` items; ``count`` of them drawn with a seeded generator (none: all)."""
    from seqrec.data.batches import next_item_examples

    users, histories, targets = next_item_examples(data, data.max_len).tensors
    keep = torch.from_numpy(np.flatnonzero(((histories > 0).sum(1) >= min_length).numpy()))
    if count is not None and count < len(keep):
        keep = keep[torch.from_numpy(np.random.default_rng(seed).permutation(len(keep))[:count])]
    return users[keep], histories[keep], targets[keep]


def split_examples(data, split: str, count: int | None, seed: int):
    """(users, left-padded histories, targets, row indices) of a validation or test split; ``count`` drawn."""
    from seqrec.data.batches import left_pad

    examples = getattr(data, split)
    rows = np.arange(len(examples))
    if count is not None and count < len(rows):
        rows = np.sort(np.random.default_rng(seed).permutation(len(rows))[:count])
    histories = left_pad([examples["history"].iloc[row] for row in rows], data.max_len)
    return (torch.from_numpy(examples["user"].to_numpy(np.int64)[rows]), torch.from_numpy(histories),
            torch.from_numpy(examples["target"].to_numpy(np.int64)[rows]), rows)


def window_of(history: torch.Tensor, length: int) -> list[int]:
    items = history[history > 0].tolist()
    return items[-length:]


def user_items(data) -> dict[int, set[int]]:
    return {int(user): set(np.asarray(items).tolist()) for user, items in zip(data.train["user"], data.train["items"])}


def distill_prompts(builder: PromptBuilder, data, config: DistillStageConfig, teacher, users, histories, targets,
                    seed: int) -> list[tuple[Prompt, ...]]:
    """One (TA, RPS) pair (or the one task an ablation keeps) per history."""
    tasks = distill_tasks(config)
    seen = user_items(data)
    rng = np.random.default_rng(seed)
    negatives = config.candidates - 1
    top = teacher_top(teacher, users, histories, config.top_h) if "rps" in tasks else None
    examples = []
    for row, (user, history, target) in enumerate(zip(users.tolist(), histories, targets.tolist())):
        window = window_of(history, config.history)
        had = seen.get(user, set()) | set(window)
        pair = []
        if "ta" in tasks:
            pair.append(builder.temporal_analysis(window, target, sample_negatives(rng, data.num_items, had,
                                                                                   negatives), config.icl_examples))
        if "rps" in tasks:
            best = top[row].tolist()
            pair.append(builder.pattern_simulating(
                window, best, sample_negatives(rng, data.num_items, had | set(best), negatives)))
        examples.append(tuple(pair))
    return examples


def recommendation_prompts(builder: PromptBuilder, data, config, users, histories, targets,
                           candidate_rows: np.ndarray | None, seed: int) -> list[tuple[Prompt]]:
    """LSR prompts; ``candidate_rows`` are the stored [target, negatives...] sets (validation, test), otherwise
    (training) the negatives are drawn outside the user's training items."""
    seen = user_items(data)
    rng = np.random.default_rng(seed)
    prompts = []
    for row, (user, history, target) in enumerate(zip(users.tolist(), histories, targets.tolist())):
        window = window_of(history, config.history)
        if candidate_rows is not None:
            negatives = [int(item) for item in candidate_rows[row][1:]]
        else:
            negatives = sample_negatives(rng, data.num_items, seen.get(user, set()) | set(window) | {target},
                                         config.candidates - 1)
        prompts.append((builder.recommendation(window, target, negatives),))
    return prompts


class PromptSet(Dataset):
    """Tuples of prompts (one per task); a batch is, per task, left-padded ids, their attention mask, the index of
    the soft-prompt vector at each position (-1 elsewhere), the candidates and the labels."""

    def __init__(self, examples: list[tuple[Prompt, ...]], pad_id: int):
        self.examples, self.pad_id = examples, pad_id

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int):
        return self.examples[index]

    def collate(self, batch) -> list[torch.Tensor]:
        tensors = []
        for task in range(len(batch[0])):
            prompts = [example[task] for example in batch]
            width = max(len(prompt.ids) for prompt in prompts)
            ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(prompts), width), dtype=torch.long)
            soft_index = torch.full((len(prompts), width), -1, dtype=torch.long)
            for row, prompt in enumerate(prompts):
                tokens = torch.tensor(prompt.ids)
                start = width - len(tokens)  # left padding: every prompt's answer position is the last column
                soft = tokens < 0
                ids[row, start:] = tokens.masked_fill(soft, self.pad_id)
                mask[row, start:] = 1
                soft_index[row, start:][soft] = -1 - tokens[soft]
            tensors += [ids, mask, soft_index, torch.tensor([prompt.candidates for prompt in prompts]),
                        torch.tensor([prompt.label for prompt in prompts])]
        return tensors


# the model ----------------------------------------------------------------------------------------------------------
def causal_lm_of(llm: nn.Module) -> nn.Module:
    return llm.get_base_model() if hasattr(llm, "get_base_model") else llm  # under peft adapters


def title_table(tokenizer, titles: list[str], max_tokens: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([items + 1, T] token ids of " title", padded; [items + 1] their lengths), row 0 (padding) empty."""
    encoded = [[]] + [tokenizer(" " + " ".join(title.split()), add_special_tokens=False)["input_ids"][:max_tokens]
                      for title in titles[1:]]
    width = max(len(ids) for ids in encoded)
    table = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    for item, ids in enumerate(encoded):
        table[item, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return table, torch.tensor([len(ids) for ids in encoded])


def cache_keyword(decoder: nn.Module) -> str:
    """The name of a decoder's key/value cache argument and output: ``cache`` from transformers 5.24 on."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def packed_titles_mask(config, mask: torch.Tensor, title_mask: torch.Tensor, dtype: torch.dtype):
    """The additive 4D attention mask for ``count`` titles of ``width`` tokens packed after each cached prompt.

    ``mask`` [batch, prompt] is the prompt's padding mask, ``title_mask`` [batch, count, width] the titles'. A title
    token attends to the prompt's tokens and to the tokens of its own title up to itself; models with sliding-window
    layers (Gemma 3) get a second mask for them, limited to the window by position and to the prompt tokens their cache
    keeps. Returns [batch, 1, queries, keys], or a dict by layer type where the config has sliding layers."""
    batch, count, width = title_mask.shape
    device = mask.device
    title = torch.arange(count, device=device).repeat_interleave(width)
    step = torch.arange(width, device=device).repeat(count)
    own = (title[:, None] == title[None]) & (step[None] <= step[:, None])  # [queries, title keys]
    allowed = torch.cat([mask.bool()[:, None].expand(-1, count * width, -1),
                         own[None] & title_mask.bool().view(batch, 1, count * width)], 2)
    blocked = torch.finfo(dtype).min

    def additive(allowed_keys: torch.Tensor) -> torch.Tensor:
        return torch.zeros(allowed_keys.shape, dtype=dtype, device=device).masked_fill(~allowed_keys, blocked)[:, None]

    if "sliding_attention" not in (getattr(config, "layer_types", None) or ()):
        return additive(allowed)
    key_positions = torch.cat([(mask.cumsum(1) - 1).clamp(min=0),
                               mask.sum(1, keepdim=True) + step[None]], 1)  # [batch, keys]
    query_positions = mask.sum(1, keepdim=True) + step[None]
    in_window = query_positions[:, :, None] - key_positions[:, None] < config.sliding_window
    kept = min(mask.shape[1], config.sliding_window - 1)  # a sliding layer's cache holds the last window - 1 tokens
    return {"full_attention": additive(allowed),
            "sliding_attention": additive((allowed & in_window)[:, :, mask.shape[1] - kept:])}


def log_probabilities(lm: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    logits = lm.get_output_embeddings()(hidden).float()
    softcap = getattr(lm.config, "final_logit_softcapping", None)  # Gemma's bounded logits
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return logits.log_softmax(-1)


class TaskWeighting(nn.Module):
    """Stage 1's dynamic task weights: lambda_i = K w_i / sum_j w_j with w_i = sqrt(L_i / L_i(0)) / ||grad L_i||,
    K the number of tasks, L_i(0) a task's loss at the first step and the gradient taken over the trainable
    parameters. A task that has progressed less (higher loss ratio) or whose gradient is small gets more weight.

    Each task's prompts run as their own forward pass, so one backward pass per task gives its gradient; the
    returned loss has the value sum_i lambda_i L_i and the gradient sum_i lambda_i grad L_i, without a third pass.
    """

    def __init__(self, tasks: int):
        super().__init__()
        self.register_buffer("first_losses", torch.zeros(tasks))  # part of checkpoints: a resumed run weighs alike

    def forward(self, losses: list[torch.Tensor], parameters: list[nn.Parameter]) -> torch.Tensor:
        values = torch.stack([loss.detach().float() for loss in losses])
        if not bool((self.first_losses > 0).all()):
            self.first_losses.copy_(values)
        gradients = [torch.autograd.grad(loss, parameters, allow_unused=True) for loss in losses]
        norms = torch.stack([torch.sqrt(sum((g.float() ** 2).sum() for g in task if g is not None))
                             for task in gradients])
        weights = (values / self.first_losses).sqrt() / (norms + 1e-12)
        lambdas = len(losses) * weights / weights.sum()
        surrogate = values.new_zeros(())
        for index, parameter in enumerate(parameters):
            parts = [lam * task[index] for lam, task in zip(lambdas, gradients) if task[index] is not None]
            if parts:
                surrogate = surrogate + (parameter * sum(parts)).sum()
        return (lambdas * values).sum() + surrogate - surrogate.detach()


class DELRecModel(nn.Module):
    """An LLM, an optional soft prompt and the verbalizer: ``scores`` ranks a prompt's candidates, ``forward`` is the
    training loss over one or two tasks (``TaskWeighting`` combines two)."""

    def __init__(self, llm: nn.Module, soft_prompt: torch.Tensor | None, titles: tuple[torch.Tensor, torch.Tensor],
                 verbalizer: str, train_soft_prompt: bool, tasks: int = 1, task_weights: str = "equal",
                 penalty=None):
        super().__init__()
        self.llm, self.verbalizer, self.penalty = llm, verbalizer, penalty
        self.soft_prompt = None if soft_prompt is None else nn.Parameter(soft_prompt.clone().float(),
                                                                         requires_grad=train_soft_prompt)
        self.register_buffer("title_ids", titles[0], persistent=False)
        self.register_buffer("title_lengths", titles[1], persistent=False)
        self.weighting = TaskWeighting(tasks) if tasks > 1 and task_weights == "dynamic" else None

    @property
    def encoder_decoder(self) -> bool:
        return bool(causal_lm_of(self.llm).config.is_encoder_decoder)

    def input_embeddings(self, ids: torch.Tensor, soft_index: torch.Tensor) -> torch.Tensor:
        embeddings = causal_lm_of(self.llm).get_input_embeddings()(ids)
        if self.soft_prompt is None:
            return embeddings
        soft = self.soft_prompt.to(embeddings.dtype)[soft_index.clamp(min=0)]
        return torch.where((soft_index >= 0)[..., None], soft, embeddings)

    def scores(self, ids: torch.Tensor, mask: torch.Tensor, soft_index: torch.Tensor,
               candidates: torch.Tensor) -> torch.Tensor:
        """[batch, candidates]: each candidate's verbalizer score after its prompt."""
        if self.encoder_decoder:
            return self.encoder_decoder_scores(ids, mask, soft_index, candidates)
        lm = causal_lm_of(self.llm)
        embeddings = self.input_embeddings(ids, soft_index)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        prefix = lm.base_model(inputs_embeds=embeddings, attention_mask=mask, position_ids=positions, use_cache=True)
        answer = prefix.last_hidden_state[:, -1]  # left padding: the answer position is the last column
        first = log_probabilities(lm, answer)
        if self.verbalizer == "first_token":
            return first.gather(1, self.title_ids[candidates, 0])
        count = candidates.shape[1]
        tokens, lengths = self.title_ids[candidates].flatten(0, 1), self.title_lengths[candidates].flatten()
        tokens = tokens[:, :int(lengths.max())]
        title_mask = (torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]).long()
        keyword = cache_keyword(lm.base_model)
        # the titles of a prompt's candidates run packed in one row after its cached prompt, each seeing the prompt
        # and its own earlier tokens only: the prompt's keys and values are never copied once per candidate
        batch, width = len(ids), tokens.shape[1]
        hidden = lm.base_model(input_ids=tokens.reshape(batch, count * width),
                               attention_mask=packed_titles_mask(lm.config, mask, title_mask.view(batch, count, width),
                                                                 self.llm.dtype),
                               position_ids=(positions[:, -1:] + 1 + torch.arange(width, device=ids.device)).repeat(
                                   1, count),
                               use_cache=True, **{keyword: getattr(prefix, keyword)}).last_hidden_state
        hidden = hidden.reshape(batch * count, width, -1)
        # token t of a title is predicted at the position before it: the answer position, then title tokens
        before = torch.cat([answer.repeat_interleave(count, 0)[:, None], hidden[:, :-1]], 1)
        return self.title_likelihood(lm, before, tokens, title_mask, count)

    def title_likelihood(self, lm, before: torch.Tensor, tokens: torch.Tensor, title_mask: torch.Tensor,
                         count: int) -> torch.Tensor:
        """Mean log-likelihood of each title's tokens from the hidden states that predict them; [batch, count]."""
        chosen = title_mask.bool()
        chosen_tokens = tokens[chosen]
        token_logp = log_probabilities(lm, before[chosen]).gather(1, chosen_tokens[:, None])[:, 0]
        per_token = torch.zeros(tokens.shape, dtype=token_logp.dtype, device=tokens.device)
        per_token[chosen] = token_logp
        return (per_token.sum(1) / title_mask.sum(1)).view(-1, count)

    def encoder_decoder_scores(self, ids, mask, soft_index, candidates) -> torch.Tensor:
        """T5: the prompt through the encoder once; the titles through the decoder, one row per candidate."""
        lm = causal_lm_of(self.llm)
        encoded = lm.get_encoder()(inputs_embeds=self.input_embeddings(ids, soft_index), attention_mask=mask)
        count = candidates.shape[1]
        tokens, lengths = self.title_ids[candidates].flatten(0, 1), self.title_lengths[candidates].flatten()
        if self.verbalizer == "first_token":
            tokens, lengths = tokens[:, :1], lengths.clamp(max=1)
        tokens = tokens[:, :int(lengths.max())]
        title_mask = (torch.arange(tokens.shape[1], device=tokens.device) < lengths[:, None]).long()
        start = torch.full((len(tokens), 1), lm.config.decoder_start_token_id, device=tokens.device)
        decoder_ids = torch.cat([start, tokens[:, :-1]], 1)
        states = encoded.last_hidden_state.repeat_interleave(count, 0)
        logits = lm(encoder_outputs=(states,), attention_mask=mask.repeat_interleave(count, 0),
                    decoder_input_ids=decoder_ids,
                    decoder_attention_mask=torch.cat([torch.ones_like(start), title_mask[:, :-1]], 1)).logits
        token_logp = logits.float().log_softmax(-1).gather(2, tokens[..., None])[..., 0] * title_mask
        return (token_logp.sum(1) / title_mask.sum(1)).view(-1, count)

    def task_losses(self, tensors) -> list[torch.Tensor]:
        return [F.cross_entropy(self.scores(*tensors[start:start + 4]), tensors[start + 4])
                for start in range(0, len(tensors), 5)]

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        losses = self.task_losses(tensors)
        penalty = self.penalty(self.llm) if self.penalty is not None else 0.0
        if self.weighting is not None and torch.is_grad_enabled():
            trainable = [parameter for parameter in self.parameters() if parameter.requires_grad]
            return self.weighting(losses, trainable) + penalty
        return sum(losses) + penalty


def candidate_ranks(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """0-based rank of each label among its candidates (pessimistic ties: an equal score ranks above)."""
    return (scores >= scores.gather(1, labels[:, None])).sum(1) - 1


class CandidateEvaluation:
    """Scores prompt sets in eval mode: per task, the loss, and the sampled metrics of the label's rank.

    Stage 2 reports HR@1/5/10 and NDCG@5/10 (its one task unnamed); stage 1 reports ``loss_<task>`` and
    ``hr@1_<task>`` and ``neg_loss``, minus the mean task loss (its early-stopping metric). With several processes
    each scores a shard and the sums are added up.
    """

    def __init__(self, prompts: PromptSet, batch_size: int, tasks: tuple[str, ...] = ()):
        self.prompts, self.batch_size, self.tasks = prompts, batch_size, tasks

    def __call__(self, model, accelerator) -> dict[str, float]:
        from seqrec.recsys.metrics import sampled_metrics
        from seqrec.training.accelerator import process_shard

        delrec = accelerator.unwrap_model(model)
        was_training = delrec.training
        delrec.eval()
        count = len(self.prompts)
        start, end = process_shard(count, accelerator)
        groups = max(len(self.tasks), 1)
        ranks = [[torch.zeros(0, dtype=torch.long, device=accelerator.device)] for _ in range(groups)]
        losses = [torch.zeros((), device=accelerator.device) for _ in range(groups)]
        with torch.inference_mode(), accelerator.autocast():
            for first in range(start, end, self.batch_size):
                batch = self.prompts.collate([self.prompts[index] for index in range(first, min(first + self.batch_size,
                                                                                               end))])
                batch = [tensor.to(accelerator.device) for tensor in batch]
                for task in range(groups):
                    ids, mask, soft_index, candidates, labels = batch[5 * task:5 * task + 5]
                    scores = delrec.scores(ids, mask, soft_index, candidates).float()
                    losses[task] += F.cross_entropy(scores, labels, reduction="sum")
                    ranks[task].append(candidate_ranks(scores, labels))
            metrics = {}
            for task in range(groups):
                values = sampled_metrics(torch.cat(ranks[task]))
                sums = accelerator.reduce(torch.stack([losses[task], *(value.sum() for value in values.values())]),
                                          reduction="sum").tolist()
                names = ["loss", *values]
                suffix = f"_{self.tasks[task]}" if self.tasks else ""
                metrics.update({f"{name}{suffix}": total / max(count, 1) for name, total in zip(names, sums)
                                if not suffix or name in ("loss", "hr@1")})
        delrec.train(was_training)
        if self.tasks:
            mean = sum(metrics[f"loss_{task}"] for task in self.tasks) / len(self.tasks)
            metrics.update(loss=mean, neg_loss=-mean)
        return metrics


class StepSchedule:
    """Lion (lion-pytorch) with a linear learning-rate warm-up, and AdaLoRA's rank allocation after every step."""

    def __init__(self, lr: float, weight_decay: float, warmup_steps: int, adalora: nn.Module | None = None):
        self.lr, self.weight_decay, self.warmup_steps, self.adalora = lr, weight_decay, warmup_steps, adalora

    def lr_at(self, step: int) -> float:
        return self.lr * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else self.lr

    def optimizer(self, parameters: list[nn.Parameter]):
        from lion_pytorch import Lion

        return Lion(parameters, lr=self.lr_at(0), weight_decay=self.weight_decay)

    def __call__(self, step: int, optimizer) -> None:
        if self.adalora is not None:
            from seqrec.training.lora import adalora_step

            adalora_step(self.adalora, step)
        for group in optimizer.param_groups:
            group["lr"] = self.lr_at(step + 1)


# loading ------------------------------------------------------------------------------------------------------------
def load_llm(path: str):
    """(the LLM, its tokenizer): a causal LM, or a sequence-to-sequence one for encoder-decoders, frozen."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    config = AutoConfig.from_pretrained(path)
    model_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    llm = model_class.from_pretrained(path, dtype=torch.float32)
    llm.requires_grad_(False)
    return llm, AutoTokenizer.from_pretrained(path)


def attention_targets(llm: nn.Module) -> list[str]:
    """The attention query and value projections: q_proj/v_proj (Llama, Qwen2, Gemma) or q/v (T5)."""
    names = {name.rsplit(".", 1)[-1] for name, module in llm.named_modules() if isinstance(module, nn.Linear)}
    for targets in (["q_proj", "v_proj"], ["q", "v"]):
        if set(targets) <= names:
            return targets
    raise SeqrecError(f"{type(llm).__name__} has no q_proj/v_proj (or q/v) projections for AdaLoRA")


def embedding_width(llm: nn.Module) -> int:
    return causal_lm_of(llm).get_input_embeddings().weight.shape[1]


def random_soft_prompt(llm: nn.Module, tokens: int, seed: int) -> torch.Tensor:
    """[tokens, width] random normal vectors at the scale (std) of the LLM's own token embeddings."""
    table = causal_lm_of(llm).get_input_embeddings().weight
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((tokens, table.shape[1]), generator=generator) * float(table.float().std())


def optimizer_steps(examples: int, train_config, processes: int) -> int:
    batches = math.ceil(math.ceil(examples / train_config.batch_size) / processes)
    return max(1, train_config.epochs * math.ceil(batches / train_config.grad_accum))


def save_adapter(llm, folder: Path) -> Path:
    """peft's adapter folder, byte for byte the same for the same weights: peft keeps ``target_modules`` as a set,
    whose order in adapter_config.json changes with each process's string hashing; it is written sorted."""
    import json

    llm.save_pretrained(folder)
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


def write_soft_prompt(path: Path, soft_prompt: torch.Tensor, meta: dict) -> Path:
    temporary = path.with_suffix(".tmp")
    torch.save({"soft_prompt": soft_prompt.detach().float().cpu(), **meta}, temporary)
    temporary.rename(path)
    return path


# stage 1 ------------------------------------------------------------------------------------------------------------
def base_config(stage: str, model: str, dataset: str, teacher: int, seed: int) -> dict:
    from seqrec.data.prepare import get_dataset
    from seqrec.llm.registry import model_record

    record = model_record(model)
    run, _ = check_teacher(teacher, dataset)
    return {"stage": stage, "model": record.alias, "model_sha256": record.sha256, "dataset": dataset,
            "dataset_fingerprint": get_dataset(dataset).fingerprint, "teacher_run": teacher,
            "teacher_model": run.config["model"], "teacher_config_hash": run.config_hash, "seed": seed}


def check_catalogue(config, data, top_h: int = 0) -> None:
    """Refuse a top-h or a candidate count the catalogue cannot fill for every training prompt, before a run opens.
    A training prompt draws its negatives outside the user's training items and its label (RPS: the top-h)."""
    if top_h > data.num_items:
        raise SeqrecError(f"--top-h {top_h} is larger than the catalogue of {data.name} ({data.num_items} items)")
    if config.candidates > data.num_items:
        raise SeqrecError(f"--candidates {config.candidates} is larger than the catalogue of {data.name} "
                          f"({data.num_items} items)")
    most = max(len(set(np.asarray(items).tolist())) for items in data.train["items"])
    left = data.num_items - most - max(top_h, 1)
    if left < config.candidates - 1:
        hint = " or --top-h" if top_h else ""
        raise SeqrecError(f"--candidates {config.candidates}: a user of {data.name} has {most} training items, which "
                          f"leaves {left} items to draw the {config.candidates - 1} negative candidates from; lower "
                          f"--candidates{hint}")


def distill_config(model: str, dataset: str, teacher: int, seed: int, options: dict) -> dict:
    """The fully resolved config of a stage-1 run: its identity and everything needed to rerun it."""
    from seqrec.data.prepare import load_dataset
    from seqrec.llm.registry import model_record

    stage, train = resolve_distill(options)
    base = base_config("distill", model, dataset, teacher, seed)
    check_prompt_format(stage, model_record(model).path)
    check_catalogue(stage, load_dataset(dataset), stage.top_h if "rps" in distill_tasks(stage) else 0)
    return {**base, "options": dict(sorted(options.items())), **dataclasses.asdict(stage),
            **dataclasses.asdict(train)}


def distill_pattern(model: str | None, dataset: str | None, teacher: int | None, *, seed: int = 0,
                    resume: int | None = None, experiment: str | None = None, **options) -> int | None:
    """Stage 1: distil the ``teacher`` run's recommendation pattern into a soft prompt for ``model``; returns the
    run id. An identical finished run is reused; ``resume`` continues an interrupted one."""
    store = open_store()
    if resume is not None:
        previous = store.resumable_run(resume, DISTILL_KIND)
        return distill_run(previous.config, previous.experiment, resume)
    if model is None or dataset is None or teacher is None:
        raise SeqrecError("delrec distill needs --model, --dataset and --teacher (or --resume RUN)")
    config = distill_config(model, dataset, teacher, seed, options)
    earlier = store.find_run(config_hash(config), kind=DISTILL_KIND)
    if earlier is not None and store.artifacts(earlier.id, kind=SOFT_PROMPT_ARTIFACT):
        return earlier.id
    return distill_run(config, experiment, None)


def distill_run(config: dict, experiment: str | None, resume: int | None) -> int | None:
    from seqrec.data.prepare import load_dataset
    from seqrec.llm.embed import pad_token_id
    from seqrec.llm.encoder import remove_resume_state, save_model_folder
    from seqrec.llm.registry import model_record
    from seqrec.training.accelerator import process_state
    from seqrec.training.loop import fit
    from seqrec.training.lora import AdaLoraAllocatorState, adalora_penalty, add_adalora
    from seqrec.training.run import training_run

    stage, train = resolve_distill(config["options"])
    data = load_dataset(config["dataset"])
    teacher_run, teacher_artifact = check_teacher(config["teacher_run"], config["dataset"])
    teacher = load_teacher(teacher_run, teacher_artifact, data)
    seed, path = config["seed"], model_record(config["model"]).path
    with training_run(DISTILL_KIND, config, seed=seed, dataset=config["dataset"], experiment=experiment,
                      inputs=[teacher_artifact], resume=resume, grad_accum=train.grad_accum,
                      mixed_precision=train.mixed_precision) as job:
        llm, tokenizer = load_llm(path)
        tasks = distill_tasks(stage)
        offsets = soft_prompt_offsets(stage, tasks)
        soft_prompt = random_soft_prompt(llm, stage.soft_tokens * max(1, len(offsets)), seed)
        pad = pad_token_id(tokenizer)
        builder = PromptBuilder(data.titles(), tokenizer, MODEL_NAMES.get(teacher_run.config["model"],
                                                                          teacher_run.config["model"]),
                                stage.item_word, SOFT_PROMPT_MARK, stage.soft_tokens, seed,
                                chat=stage.prompt_format == "chat", soft_offsets=offsets)
        users, histories, targets = training_prefixes(data, stage.max_examples, seed, min_length=2)
        train_set = PromptSet(distill_prompts(builder, data, stage, teacher, users, histories, targets, seed), pad)
        valid_users, valid_histories, valid_targets, _ = split_examples(data, "valid", stage.valid_examples, seed)
        keep = (valid_histories > 0).sum(1) >= 2
        valid_set = PromptSet(distill_prompts(builder.reseed(seed + 1), data, stage, teacher, valid_users[keep],
                                              valid_histories[keep], valid_targets[keep], seed + 1), pad)
        adalora = None
        if stage.ablation == "w_udpsm":  # the LLM trains too, through the same adapters as stage 2
            steps = optimizer_steps(len(train_set), train, process_state().num_processes)
            llm = adalora = add_adalora(llm, steps, attention_targets(llm), stage.rank_start, stage.rank_target)
            job.accelerator.register_for_checkpointing(AdaLoraAllocatorState(adalora))
        model = DELRecModel(llm, soft_prompt, title_table(tokenizer, data.titles(), stage.title_tokens, pad),
                            stage.verbalizer, train_soft_prompt=True, tasks=len(tasks),
                            task_weights=stage.task_weights, penalty=adalora_penalty if adalora else None)
        schedule = StepSchedule(train.lr, train.weight_decay, stage.warmup_steps, adalora)
        model, _ = fit(model, train_set, CandidateEvaluation(valid_set, train.batch_size, tasks), train,
                       job.accelerator, job.dir, seed, resume=resume is not None, validate_first=True,
                       make_optimizer=schedule.optimizer, after_step=schedule)
        if job.run is not None:
            record = model_record(config["model"])
            meta = {"model": record.alias, "model_sha256": record.sha256, "width": embedding_width(llm),
                    "teacher_model": config["teacher_model"], "ablation": stage.ablation}
            job.log_artifact(write_soft_prompt(job.dir / "soft_prompt.pt", model.soft_prompt, meta),
                             kind=SOFT_PROMPT_ARTIFACT, meta=meta)
            if adalora is not None:
                job.log_artifact(save_model_folder(model.llm, tokenizer, job.dir / "model"), kind="model",
                                 meta={"model": record.alias, "stage": "delrec distill (w_udpsm)"})
            remove_resume_state(job.dir)
    return job.id


# stage 2 ------------------------------------------------------------------------------------------------------------
def distilled_inputs(distilled: int, model: str | None, dataset: str | None, teacher: int | None):
    """What a finished stage-1 run fixes for stage 2: its model, dataset, teacher and soft prompt."""
    store = open_store()
    run = store.get_run(distilled)
    if run.kind != DISTILL_KIND or run.status != "finished":
        raise SeqrecError(f"--distilled {distilled}: run {distilled} is a {run.status} {run.kind} run, not a finished "
                          "`seqrec delrec distill` run")
    artifacts = store.artifacts(distilled, kind=SOFT_PROMPT_ARTIFACT)
    if not artifacts or not Path(artifacts[-1].path).exists():
        raise SeqrecError(f"--distilled {distilled}: the run saved no soft prompt")
    soft = artifacts[-1]
    if model is not None:
        from seqrec.llm.registry import model_record

        record = model_record(model)
        if record.sha256 != soft.meta["model_sha256"]:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(record.path)
            width = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
            raise SeqrecError(f"the soft prompt of run {distilled} was trained on {soft.meta['model']} (width "
                              f"{soft.meta['width']}); --model {model} is another LLM (width {width}): distil one "
                              "for it first")
    for name, given, own in (("--dataset", dataset, run.dataset), ("--teacher", teacher, run.config["teacher_run"])):
        if given is not None and given != own:
            raise SeqrecError(f"{name} {given} differs from the distill run's ({own}); leave it out")
    return run, soft


def finetune_config(distilled: int | None, model: str | None, dataset: str | None, teacher: int | None, seed: int,
                    options: dict) -> dict:
    """The fully resolved config of a stage-2 run."""
    from seqrec.data.prepare import get_dataset, load_dataset
    from seqrec.llm.registry import model_record
    from seqrec.recsys.evaluate import stored_candidates

    stage, train = resolve_finetune(options)
    uses_distilled = stage.ablation in ("none", "w_ulsr")
    if uses_distilled and distilled is None:
        raise SeqrecError("delrec finetune needs --distilled RUN (a stage-1 run) unless --ablation is wo_sp, w_mcp "
                          "or w_usp")
    if not uses_distilled and distilled is not None:
        raise SeqrecError(f"--ablation {stage.ablation} uses no distilled soft prompt: leave out --distilled and give "
                          "--model, --dataset and --teacher")
    soft = None
    if distilled is not None:
        run, soft = distilled_inputs(distilled, model, dataset, teacher)
        model, dataset, teacher = run.config["model"], run.dataset, run.config["teacher_run"]
    if model is None or dataset is None or teacher is None:
        raise SeqrecError("delrec finetune needs --model, --dataset and --teacher for this ablation")
    check_prompt_format(stage, model_record(model).path)
    data = load_dataset(dataset)
    check_catalogue(stage, data)
    for split in ("valid", "test"):  # written now, so that a count the catalogue cannot fill fails before the run
        stored_candidates(data, Path(get_dataset(dataset).path), split, stage.candidates - 1, seed)
    distill_ablation = open_store().get_run(distilled).config["ablation"] if distilled is not None else "none"
    return {**base_config("finetune", model, dataset, teacher, seed), "distilled_run": distilled,
            "soft_prompt_sha256": soft.sha256 if soft is not None else None,
            "variant": stage.ablation if stage.ablation != "none" else distill_ablation,
            "eval": f"sampled:{stage.candidates - 1}",  # the protocol of the stored sets it is tested on
            "options": dict(sorted(options.items())), **dataclasses.asdict(stage), **dataclasses.asdict(train)}


def finetune(distilled: int | None = None, *, model: str | None = None, dataset: str | None = None,
             teacher: int | None = None, seed: int = 0, resume: int | None = None, experiment: str | None = None,
             **options) -> int | None:
    """Stage 2: fine-tune the LLM (AdaLoRA) to recommend with the ``distilled`` run's soft prompt frozen; logs
    the test metrics over the stored candidate sets; returns the run id."""
    store = open_store()
    if resume is not None:
        previous = store.resumable_run(resume, FINETUNE_KIND)
        return finetune_run(previous.config, previous.experiment, resume)
    config = finetune_config(distilled, model, dataset, teacher, seed, options)
    earlier = store.find_run(config_hash(config), kind=FINETUNE_KIND)
    if earlier is not None:
        return earlier.id
    return finetune_run(config, experiment, None)


def finetune_run(config: dict, experiment: str | None, resume: int | None) -> int | None:
    from seqrec.data.prepare import get_dataset, load_dataset
    from seqrec.llm.embed import pad_token_id
    from seqrec.llm.encoder import remove_resume_state
    from seqrec.llm.registry import model_record
    from seqrec.recsys.evaluate import stored_candidates
    from seqrec.training.accelerator import process_state
    from seqrec.training.loop import fit
    from seqrec.training.lora import AdaLoraAllocatorState, adalora_penalty, add_adalora
    from seqrec.training.run import training_run

    stage, train = resolve_finetune(config["options"])
    data = load_dataset(config["dataset"])
    folder = Path(get_dataset(config["dataset"]).path)
    seed, store = config["seed"], open_store()
    inputs, soft_prompt, path = [], None, model_record(config["model"]).path
    if config["distilled_run"] is not None:
        soft_artifact = store.artifacts(config["distilled_run"], kind=SOFT_PROMPT_ARTIFACT)[-1]
        soft_prompt = torch.load(soft_artifact.path, map_location="cpu", weights_only=True)["soft_prompt"]
        inputs.append(soft_artifact)
        udpsm_model = store.artifacts(config["distilled_run"], kind="model")  # w_udpsm: stage 1 changed the LLM
        if udpsm_model:
            path = udpsm_model[-1].path
    else:  # wo_sp, w_mcp, w_usp: the conventional model is only named in the prompt; the lineage still records it
        inputs.append(check_teacher(config["teacher_run"], config["dataset"])[1])
    with training_run(FINETUNE_KIND, config, seed=seed, dataset=config["dataset"], experiment=experiment,
                      inputs=inputs, resume=resume, grad_accum=train.grad_accum,
                      mixed_precision=train.mixed_precision) as job:
        llm, tokenizer = load_llm(path)
        if stage.ablation == "w_usp":
            soft_prompt = random_soft_prompt(llm, stage.soft_tokens, seed)
        if soft_prompt is not None and soft_prompt.shape[1] != embedding_width(llm):
            raise SeqrecError(f"the soft prompt is {soft_prompt.shape[1]} wide, the LLM {embedding_width(llm)}")
        pattern = {"wo_sp": "", "w_mcp": PATTERN_DESCRIPTIONS.get(config["teacher_model"], "")}.get(
            stage.ablation, SOFT_PROMPT_MARK)
        pad = pad_token_id(tokenizer)
        builder = PromptBuilder(data.titles(), tokenizer, MODEL_NAMES.get(config["teacher_model"],
                                                                          config["teacher_model"]),
                                stage.item_word, pattern, len(soft_prompt) if soft_prompt is not None else 0, seed,
                                chat=stage.prompt_format == "chat")
        users, histories, targets = training_prefixes(data, stage.max_examples, seed)
        train_set = PromptSet(recommendation_prompts(builder, data, stage, users, histories, targets, None, seed), pad)
        evaluations = {}
        for split, count in (("valid", stage.valid_examples), ("test", stage.test_examples)):
            split_users, split_histories, split_targets, rows = split_examples(data, split, count, seed)
            stored = stored_candidates(data, folder, split, stage.candidates - 1, seed)[rows]
            prompts = recommendation_prompts(builder.reseed(seed + 1 + len(evaluations)), data, stage, split_users,
                                             split_histories, split_targets, stored, seed)
            evaluations[split] = CandidateEvaluation(PromptSet(prompts, pad), train.batch_size)
        steps = optimizer_steps(len(train_set), train, process_state().num_processes)
        llm = add_adalora(llm, steps, attention_targets(llm), stage.rank_start, stage.rank_target)
        job.accelerator.register_for_checkpointing(AdaLoraAllocatorState(llm))
        model = DELRecModel(llm, soft_prompt, title_table(tokenizer, data.titles(), stage.title_tokens, pad),
                            stage.verbalizer, train_soft_prompt=stage.ablation == "w_ulsr", penalty=adalora_penalty)
        schedule = StepSchedule(train.lr, train.weight_decay, stage.warmup_steps, llm)
        model, state = fit(model, train_set, evaluations["valid"], train, job.accelerator, job.dir, seed,
                           resume=resume is not None, validate_first=True, make_optimizer=schedule.optimizer,
                           after_step=schedule)
        metrics = evaluations["test"](model, job.accelerator)
        job.accelerator.log(metrics, step=state.best_epoch, log_kwargs={"seqrec": {"split": "test"}})
        if job.run is not None:
            delrec = job.accelerator.unwrap_model(model)
            save_adapter(delrec.llm, job.dir / "adapter")
            job.log_artifact(job.dir / "adapter", kind="adapter", meta={"model": config["model"]})
            if delrec.soft_prompt is not None:
                meta = {"model": config["model"], "width": embedding_width(delrec.llm), "variant": config["variant"]}
                job.log_artifact(write_soft_prompt(job.dir / "soft_prompt.pt", delrec.soft_prompt, meta),
                                 kind=SOFT_PROMPT_ARTIFACT, meta=meta)
            remove_resume_state(job.dir)
    return job.id
