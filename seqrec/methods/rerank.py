"""Post-hoc LLM re-ranking (the first paper's robustness module): a recommender trained on clean histories
proposes its top K items from a (possibly noisy) history, and an LLM re-orders them by sequential coherence,
interest consistency and specificity matching (``templates/rerank.jinja``).

Two ways to read the LLM. ``logprobs`` (LlamaRec's verbalizer): the candidates stand behind single-token labels
and one forward pass gives every label's log-probability as the answer's first token; a label is scored with and
without a leading space (how the answer starts depends on the prompt's end) and both forms must be one token.
``generate``: the model writes an ordering, and a strict parser reads only the labels it asked for (duplicates
dropped, unknown labels ignored, missing candidates appended in base order); an answer without a label, or a call
that failed, falls back to the base order. Every answer is counted as parsed, repaired or fallen back.

Position bias: ``permutations`` > 1 shows each user's candidates in that many orders, each copy shuffled by its
own generator seeded by (seed, user, copy), and averages the candidates' scores over the copies (mean
log-probability, or Borda points for generated orderings). ``alpha`` fuses the LLM's score with the base model's
on the same scale (1 = the LLM alone). Items below the top K keep the base order, so the metrics rank the whole
catalogue, and the base model's own numbers on the same users are logged beside them.

Calls go through the call cache in slices of users, so a run interrupted midway and started again answers the
finished users from the cache and ends with the same metrics.
"""

from __future__ import annotations

import re
import string
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqrec.errors import SeqrecError
from seqrec.llm.backends.options import LLMOptions
from seqrec.llm.prompts import render_prompt, template_file, template_variables
from seqrec.recsys.guide import run_reference
from seqrec.store import file_digest, open_store

RERANK_KIND = "rerank"
RANKINGS_KIND = "rankings"
MODES = ("logprobs", "generate")
SPLITS = ("valid", "test")
LABEL_SETS = {"letters": list(string.ascii_uppercase), "numbers": [str(n) for n in range(1, 100)]}
DEFAULT_LABELS = {"logprobs": "letters", "generate": "numbers"}  # numbers are several tokens, but only read back
REQUIRED_VARIABLES = ("history", "candidates", "labels")  # the rest (mode, top_k) are offered, not required
OUTCOMES = ("parsed", "repaired", "fallback")
USERS_SEED = 0  # the users subset is drawn with one fixed seed, so every base model is re-ranked on the same users
ANSWER_CUE = "\nAnswer:"  # a plain-text prompt (a model without a chat template) ends where the answer starts
REPORTED = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")


@dataclass(frozen=True)
class Reranked:
    run_id: int
    metrics: dict[str, float]  # re-ranked, over the re-ranked users
    base: dict[str, float]  # the base model on the same users
    counts: dict[str, float]
    path: Path
    cached: bool


# labels, template, users -------------------------------------------------------------------------------------
def candidate_labels(spec: str, top_k: int) -> list[str]:
    """The first ``top_k`` labels of a named set (letters, numbers) or of a comma-separated list."""
    labels = LABEL_SETS.get(spec) or [label.strip() for label in spec.split(",") if label.strip()]
    if len(labels) < top_k:
        raise SeqrecError(f"--labels {spec!r} has {len(labels)} labels, fewer than --top-k {top_k}")
    labels = labels[:top_k]
    if len(set(labels)) != len(labels) or not all(re.fullmatch(r"[A-Za-z0-9]+", label) for label in labels):
        raise SeqrecError(f"--labels {spec!r}: labels must be distinct letters or digits")
    return labels


def scored_forms(label: str) -> tuple[str, str]:
    return label, " " + label


def check_single_tokens(tokenizer, labels: list[str], alias: str) -> None:
    """Every label must be one token of a local model, with and without a leading space (an endpoint's tokenizer
    is not known here: a label it does not return as a top token gets its floor score and is counted repaired)."""
    from seqrec.llm.backends.local import single_token_id

    for label in labels:
        for form in scored_forms(label):
            try:
                single_token_id(tokenizer, form, alias)
            except SeqrecError as exc:
                raise SeqrecError(f"--labels: {exc} (logprobs reads every label with and without a leading "
                                  "space; letters are one token both ways in most tokenizers)") from None


class DeferredBackend:
    """A local backend whose weights load on its first call, so that a run answered entirely from the call cache
    never loads the LLM (its name and identity are known without them)."""

    name = "local"
    score_options: dict = {}

    def __init__(self, identity: str, open_backend):
        self.identity, self.open_backend, self.backend = identity, open_backend, None

    def opened(self):
        if self.backend is None:
            self.backend = self.open_backend()
        return self.backend

    def score(self, prompts, labels):
        return self.opened().score(prompts, labels)

    def generate(self, prompts, decoding):
        return self.opened().generate(prompts, decoding)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def check_template(template: str) -> str:
    """sha256 of the template file, after checking it reads every variable the method needs."""
    missing = [name for name in REQUIRED_VARIABLES if name not in template_variables(template)]
    if missing:
        raise SeqrecError(f"prompt template {template} does not use {', '.join(missing)}: a re-ranking template "
                          f"shows the history, and each candidate behind its label ({', '.join(REQUIRED_VARIABLES)})")
    return file_digest(template_file(template))[0]


def user_rows(count: int, users: int | None) -> np.ndarray:
    """Rows of the split's examples to re-rank: all, or a fixed seeded sample of ``users`` (in row order)."""
    if users is None or users >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(USERS_SEED).choice(count, size=users, replace=False))


def shown_order(top_k: int, permutations: int, seed: int, user: int, copy: int) -> np.ndarray:
    """Positions (in base order) of the candidates as copy ``copy`` shows them: the base order when there is one
    copy, else a shuffle drawn from a generator of its own (no two copies share a permutation by construction)."""
    if permutations == 1:
        return np.arange(top_k)
    return np.random.default_rng([seed, user, copy]).permutation(top_k)


# reading answers ---------------------------------------------------------------------------------------------
def parse_ordering(text: str, labels: list[str]) -> tuple[list[int], str]:
    """(label positions best first, every label once; outcome). Parsed: the answer is exactly a list of all the
    labels. Repaired: labels were read from other text, or duplicates dropped, unknown ones ignored, missing ones
    appended in base order. Fallback: no label at all, so the base order."""
    position = {label: index for index, label in enumerate(labels)}
    item = r"\[?\s*([A-Za-z0-9]+)\s*\]?"
    strict = re.fullmatch(rf"\s*{item}(?:\s*[,;>]\s*{item})*\s*\.?\s*", text)
    found = re.findall(r"(?<![A-Za-z0-9])(" + "|".join(sorted(map(re.escape, labels), key=len, reverse=True))
                       + r")(?![A-Za-z0-9])", text)
    order = list(dict.fromkeys(position[label] for label in found))
    if not order:
        return list(range(len(labels))), "fallback"
    listed = re.findall(r"[A-Za-z0-9]+", text) if strict else []
    clean = bool(strict) and listed == [labels[index] for index in order] and len(order) == len(labels)
    return order + [index for index in range(len(labels)) if index not in order], "parsed" if clean else "repaired"


def label_scores(scores, labels: list[str]) -> tuple[np.ndarray, str]:
    """(log-probabilities over the shown labels, outcome) of one scored prompt: each label's two forms summed,
    then normalised over the labels. Repaired: an endpoint left some label out of its top alternatives."""
    values = np.array([np.logaddexp(*(scores.logprobs[form] for form in scored_forms(label))) for label in labels])
    missing = set(scores.missing)
    outcome = "repaired" if any(set(scored_forms(label)) <= missing for label in labels) else "parsed"
    return values - np.logaddexp.reduce(values), outcome


def borda(order: list[int]) -> np.ndarray:
    """Borda points in [0, 1] per position: the first of K gets 1, the last 0."""
    points = np.zeros(len(order))
    points[order] = np.linspace(1.0, 0.0, len(order)) if len(order) > 1 else 1.0
    return points


def base_scale(mode: str, scores: np.ndarray) -> np.ndarray:
    """The base model's top-K scores on the LLM's scale: log-probabilities over the K (logprobs), Borda points of
    its order (generate)."""
    if mode == "logprobs":
        return scores - np.logaddexp.reduce(scores)
    return borda(list(range(len(scores))))


def fused_order(llm: np.ndarray | None, base: np.ndarray, alpha: float) -> np.ndarray:
    """Positions (in base order) by alpha * LLM + (1 - alpha) * base, ties and a missing LLM score in base order."""
    if llm is None:
        return np.arange(len(base))
    return np.argsort(-(alpha * llm + (1 - alpha) * base), kind="stable")


# the base model's candidates -----------------------------------------------------------------------------------
@dataclass
class Candidates:
    """Per re-ranked example: user, target, noisy history (oldest first), top-K items and scores, base rank."""

    users: list[int]
    targets: np.ndarray
    histories: list[list[int]]
    top: np.ndarray  # [examples, K] item ids, best first
    top_scores: np.ndarray  # [examples, K]
    base_ranks: np.ndarray  # 0-based rank of the target over the whole catalogue (pessimistic ties)


@torch.inference_mode()
def base_candidates(config: dict, trained, weights: Path, data, data_folder: Path, rows: np.ndarray,
                    batch_size: int = 512) -> Candidates:
    """The base model's top K from the same (noisy) histories `seqrec evaluate` would feed it."""
    from seqrec.recsys.evaluate import Evaluator
    from seqrec.recsys.metrics import mask_seen, target_ranks
    from seqrec.recsys.runner import trained_recommender

    model = trained_recommender(trained.config, weights, data)
    evaluator = Evaluator(data, config["split"], protocol="full", noise=config["noise"], seed=config["noise_seed"],
                          mask_seen_items=config["mask_seen"], data_folder=data_folder)
    top, top_scores, ranks = [], [], []
    index = torch.from_numpy(rows)
    for start in range(0, len(rows), batch_size):
        chunk = index[start:start + batch_size]
        targets = evaluator.targets[chunk]
        scores = model.scores(evaluator.users[chunk], evaluator.histories[chunk])
        if evaluator.seen is not None:
            pairs = [evaluator.seen_in(int(row), int(row) + 1, "cpu") for row in chunk]
            seen_rows = torch.cat([torch.full_like(items, offset) for offset, (_, items) in enumerate(pairs)])
            scores = mask_seen(scores, seen_rows, torch.cat([items for _, items in pairs]), targets)
        best = scores.topk(config["top_k"], dim=1)
        top.append(best.indices)
        top_scores.append(best.values)
        ranks.append(target_ranks(scores, targets))
    histories = [[int(item) for item in history if item] for history in evaluator.histories[index].tolist()]
    return Candidates(users=evaluator.users[index].tolist(), targets=evaluator.targets[index].numpy(),
                      histories=histories, top=torch.cat(top).numpy(), top_scores=torch.cat(top_scores).numpy(),
                      base_ranks=torch.cat(ranks).numpy())


def reranked_ranks(candidates: Candidates, orders: list[np.ndarray]) -> np.ndarray:
    """0-based ranks of the targets after re-ranking: a target among the top K takes its new place there, any
    other keeps its base rank (the items below the top K keep the base order)."""
    ranks = candidates.base_ranks.copy()
    for row, order in enumerate(orders):
        hits = np.flatnonzero(candidates.top[row][order] == candidates.targets[row])
        if hits.size:
            ranks[row] = int(hits[0])
    return ranks


def ranking_metrics(ranks: np.ndarray) -> dict[str, float]:
    from seqrec.recsys.metrics import full_metrics

    return {key: float(value.mean()) for key, value in full_metrics(torch.from_numpy(ranks)).items()}


def paired_p_values(reranked: np.ndarray, base: np.ndarray) -> dict[str, float]:
    """Two-sided paired t-tests over users, re-ranked vs base, of each reported metric (left out when every
    user's difference is the same: the test is undefined there)."""
    from scipy import stats

    from seqrec.recsys.metrics import full_metrics

    ours, theirs = (full_metrics(torch.from_numpy(ranks)) for ranks in (reranked, base))
    values = {}
    for key in REPORTED:
        if np.ptp((ours[key] - theirs[key]).numpy()) > 1e-12:
            values[key] = float(stats.ttest_rel(ours[key].numpy(), theirs[key].numpy()).pvalue)
    return values


# the LLM -----------------------------------------------------------------------------------------------------
class Reranker:
    """Prompts for every (user, copy), sent in slices through the cached backend; each copy's answer read into
    scores over the candidates, counted by outcome."""

    def __init__(self, config: dict, cached, titles: list[str], chat: bool, progress):
        self.config, self.cached, self.titles, self.chat, self.progress = config, cached, titles, chat, progress
        self.labels = config["labels"]
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.llm_seconds = 0.0

    def prompt(self, history: list[int], shown: list[int]):
        text = render_prompt(self.config["template"], history=[self.titles[item] for item in history],
                             candidates=[self.titles[item] for item in shown], labels=self.labels,
                             mode=self.config["mode"], top_k=len(self.labels))
        return [{"role": "user", "content": text}] if self.chat else text + ANSWER_CUE

    def send(self, prompts: list) -> list:
        from seqrec.llm.backends import Decoding

        started = time.perf_counter()
        if self.config["mode"] == "logprobs":
            forms = [form for label in self.labels for form in scored_forms(label)]
            answers = self.cached.score(prompts, forms)
        else:
            answers = self.cached.generate(prompts, Decoding(max_tokens=self.config["max_tokens"]))
        self.llm_seconds += time.perf_counter() - started
        return answers

    def read(self, answer) -> tuple[np.ndarray | None, str]:
        """Scores per shown position (None when the answer falls back) and the outcome."""
        if not hasattr(answer, "logprobs" if self.config["mode"] == "logprobs" else "text"):
            return None, "fallback"  # a call that failed after its retries
        if self.config["mode"] == "logprobs":
            return label_scores(answer, self.labels)
        order, outcome = parse_ordering(answer.text, self.labels)
        return (None if outcome == "fallback" else borda(order)), outcome

    def orders(self, candidates: Candidates, slice_users: int) -> tuple[list[np.ndarray], list[str]]:
        """Each example's final order of its top K (positions in base order) and how its answers were read."""
        config = self.config
        copies = config["permutations"]
        orders, outcomes = [], []
        for start in range(0, len(candidates.users), slice_users):
            rows = range(start, min(start + slice_users, len(candidates.users)))
            shown = {(row, copy): shown_order(config["top_k"], copies, config["seed"], candidates.users[row], copy)
                     for row in rows for copy in range(copies)}
            answers = self.send([self.prompt(candidates.histories[row], candidates.top[row][order].tolist())
                                 for (row, _), order in shown.items()])
            read = dict(zip(shown, map(self.read, answers)))
            for row in rows:
                total, scored, read_as = np.zeros(config["top_k"]), 0, []
                for copy in range(copies):
                    values, outcome = read[(row, copy)]
                    self.counts[outcome] += 1
                    read_as.append(outcome)
                    if values is not None:
                        total[shown[(row, copy)]] += values  # scores follow their candidates back to base order
                        scored += 1
                llm = total / scored if scored else None
                base = base_scale(config["mode"], candidates.top_scores[row])
                orders.append(fused_order(llm, base, config["alpha"]))
                outcomes.append("fallback" if not scored else "parsed" if set(read_as) == {"parsed"} else "repaired")
            self.progress(len(rows))
        return orders, outcomes


# the run -----------------------------------------------------------------------------------------------------
def base_run(reference: int | str):
    """(run, saved weights) of the finished training run to re-rank."""
    store = open_store()
    run = store.get_run(run_reference(reference))
    if run.kind != "train" or run.status != "finished":
        raise SeqrecError(f"run {run.id} is a {run.status} {run.kind} run; re-ranking needs a finished `seqrec "
                          "train` run as its base model")
    models = store.artifacts(run.id, kind="model")
    if not models or not Path(models[-1].path).exists():
        raise SeqrecError(f"run {run.id} has no saved model to propose candidates")
    return run, Path(models[-1].path)


def check_options(mode: str, split: str, top_k: int, permutations: int, alpha: float, users: int | None,
                  num_items: int) -> None:
    if mode not in MODES:
        raise SeqrecError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if split not in SPLITS:
        raise SeqrecError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    if not 2 <= top_k <= num_items:
        raise SeqrecError(f"--top-k {top_k} must be between 2 and the catalogue's {num_items} items")
    if permutations < 1:
        raise SeqrecError(f"--permutations must be at least 1, not {permutations}")
    if not 0 <= alpha <= 1:
        raise SeqrecError(f"--alpha must be between 0 (the base model alone) and 1 (the LLM alone), not {alpha}")
    if users is not None and users < 1:
        raise SeqrecError(f"--users must be at least 1, not {users}")


def rerank_label(name: str, mode: str, permutations: int, alpha: float) -> str:
    """How a report row names this re-ranking."""
    return f"{name}/{mode}" + (f"/P{permutations}" if permutations > 1 else "") + (f"/a{alpha:g}" if alpha < 1 else "")


def rerank_config(base: int | str, llm: str | LLMOptions | None = None, *, noise: str | None = None,
                  split: str = "test", top_k: int = 20,
                  mode: str = "logprobs", permutations: int = 1, alpha: float = 1.0, users: int | None = None,
                  labels: str | None = None, template: str = "rerank", max_tokens: int | None = None, seed: int = 0,
                  dtype: str = "auto") -> dict:
    """The fully resolved config of re-ranking a finished training run, every option checked."""
    from seqrec.data.noise import parse_noise
    from seqrec.data.prepare import get_dataset, load_dataset

    trained, _ = base_run(base)
    parse_noise(noise)
    dataset_row, data = get_dataset(trained.dataset), load_dataset(trained.dataset)
    check_options(mode, split, top_k, permutations, alpha, users, data.num_items)
    if users is not None and users >= len(getattr(data, split)):
        users = None  # every user: the same run as asking for all of them
    llm = LLMOptions.of(llm)
    return {"base_run": trained.id, "base_config_hash": trained.config_hash, "dataset": trained.dataset,
            "dataset_fingerprint": dataset_row.fingerprint, "model": trained.config["model"],
            "item_emb": trained.config.get("item_emb"), "eval": "full", "split": split,
            "noise": noise if noise not in ("", "none") else None, "noise_seed": trained.seed,
            "mask_seen": trained.config.get("mask_seen", False), "top_k": top_k, "mode": mode,
            "aggregate": "mean-logprob" if mode == "logprobs" else "borda", "permutations": permutations,
            "alpha": alpha, "seed": seed, "labels": candidate_labels(labels or DEFAULT_LABELS[mode], top_k),
            "template": str(template), "template_sha256": check_template(template),
            "backend": llm.backend_name, "llm": llm.identity(dtype),
            "max_tokens": (max_tokens or 4 * top_k + 8) if mode == "generate" else None,
            "users": users, "users_seed": USERS_SEED if users is not None else None,
            "rerank": rerank_label(llm.name, mode, permutations, alpha)}


def rerank(base: int | str, llm: str | LLMOptions | None = None, *, batch_size: int = 16,
           experiment: str | None = None, **options) -> Reranked:
    """Re-rank a finished training run's top ``top_k`` for each user of ``split`` (or a fixed sample of ``users``)
    with a registry LLM (``llm``: alias or run:ID) or an OpenAI-compatible endpoint (``LLMOptions``); a ``rerank``
    run with the re-ranked and the base metrics on the same users and each user's final ranking. ``options`` are
    those of :func:`rerank_config`."""
    from seqrec.data.prepare import get_dataset, load_dataset

    llm = LLMOptions.of(llm)
    config = rerank_config(base, llm, **options)
    earlier = None if llm.no_cache else finished_rerank(config)
    if earlier is not None:
        return earlier
    trained, weights = base_run(base)
    if llm.endpoint is not None:
        backend, chat = llm.open(), True  # an endpoint applies its own chat template
    else:
        from transformers import AutoTokenizer

        record = llm.record()
        tokenizer = AutoTokenizer.from_pretrained(record.path)
        if config["mode"] == "logprobs":
            check_single_tokens(tokenizer, config["labels"], record.alias)
        backend = DeferredBackend(config["llm"], lambda: llm.open(batch_size=batch_size,
                                                                  dtype=options.get("dtype", "auto")))
        chat = bool(tokenizer.chat_template)
    try:
        return rerank_run(config, backend, chat, trained, weights, load_dataset(trained.dataset),
                          Path(get_dataset(trained.dataset).path), batch_size, experiment, llm.no_cache)
    finally:
        backend.close()


def finished_rerank(config: dict) -> Reranked | None:
    """The finished run of this config, while its rankings are on disk."""
    store = open_store()
    found = store.finished_artifact(config, RERANK_KIND, RANKINGS_KIND)
    if found is None:
        return None
    run_id, path = found
    final = store.final_metrics(run_id)
    return Reranked(run_id, final.get("test", {}), final.get("base", {}), final.get("rerank", {}), path, cached=True)


def rerank_run(config: dict, backend, chat: bool, trained, weights, data, data_folder: Path, batch_size: int,
               experiment: str | None, no_cache: bool = False) -> Reranked:
    """A new run that re-ranks every chosen user."""
    from seqrec.llm.backends import CachedLLM
    from seqrec.progress import counting

    store = open_store()
    titles = [""] * (data.num_items + 1)
    for item, title in zip(data.items["item"], data.items["title"]):
        titles[int(item)] = str(title)
    rows = user_rows(len(getattr(data, config["split"])), config["users"])
    with store.start_run(RERANK_KIND, config, experiment=experiment, seed=trained.seed, dataset=trained.dataset,
                         inputs=[trained.id]) as run:
        started = time.perf_counter()
        candidates = base_candidates(config, trained, weights, data, data_folder, rows)
        cached = CachedLLM(backend, store=store, run_id=run.id, no_cache=no_cache)
        with counting(f"re-ranking {len(rows):,} users", len(rows)) as advance:
            reranker = Reranker(config, cached, titles, chat, progress=advance)
            orders, outcomes = reranker.orders(candidates, slice_users=max(1, 4 * batch_size // config["permutations"]))
        ranks = reranked_ranks(candidates, orders)
        metrics, base = ranking_metrics(ranks), ranking_metrics(candidates.base_ranks)
        path = write_rankings(run.dir / "rankings.parquet", candidates, orders, ranks, outcomes)
        seconds = time.perf_counter() - started
        counts = {**reranker.counts, "users": len(rows), "users_fallen_back": outcomes.count("fallback"),
                  "prompts": len(rows) * config["permutations"], "seconds": seconds,
                  "llm_seconds": reranker.llm_seconds, "users_per_s": len(rows) / max(seconds, 1e-9)}
        run.log_metrics(metrics, split="test")
        run.log_metrics(base, split="base")
        run.log_metrics({f"p_{key}": value for key, value in paired_p_values(ranks, candidates.base_ranks).items()},
                        split="paired")
        run.log_metrics(counts, split="rerank")
        cached.log_counts(run)
        run.log_artifact(path, RANKINGS_KIND, meta={"users": len(rows), "top_k": config["top_k"],
                                                    "mode": config["mode"], "llm": config["llm"]})
    return Reranked(run.id, metrics, base, counts, path, cached=False)


def write_rankings(path: Path, candidates: Candidates, orders: list[np.ndarray], ranks: np.ndarray,
                   outcomes: list[str]) -> Path:
    """Each user's final top K (the items below keep the base order), the target's ranks and how it was read."""
    frame = pd.DataFrame({"user": candidates.users, "target": candidates.targets,
                          "base_top": [row.tolist() for row in candidates.top],
                          "reranked_top": [row[order].tolist() for row, order in zip(candidates.top, orders)],
                          "base_rank": candidates.base_ranks + 1, "rank": ranks + 1, "outcome": outcomes})
    partial = path.with_suffix(".partial")
    frame.to_parquet(partial, index=False)
    partial.rename(path)
    return path
