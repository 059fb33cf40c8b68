"""User-profile distillation (the second paper): an LLM writes a profile of every user from their training
interactions, the profiles become one vector per user, and that vector guides a recommender's hidden states while
it trains (``seqrec/recsys/guide.py``); at inference the recommender never sees a profile.

Generation: each user's training history (never a validation or test item) is rendered with every text field
the dataset's items have and the user's ratings, through a sandboxed template (``templates/profiles/``) and the
model's chat template. A history too long for the context is cut by halving until each part fits, counted with the
model's own tokenizer; ``agg_after`` profiles every part and then merges the parts in one call, ``agg_with`` profiles
the first part and updates the profile with each further part. Calls of many users go to the backend together
(one padded batch per decoding step locally) and through the call cache, so an interrupted generation resumes
where it stopped and an identical request finds its finished run.

Embedding: a sentence encoder (multilingual-e5-large in the paper; all-MiniLM-L6-v2 offline) embeds the profiles,
then an optional seeded reducer (UMAP or PCA) fitted on the training users' profiles.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec.errors import SeqrecError
from seqrec.llm.backends.options import LLMOptions
from seqrec.llm.prompts import render_prompt
from seqrec.recsys.guide import EMBEDDINGS_KIND, run_reference
from seqrec.resources import resource_dir
from seqrec.store import open_store

PROMPTS = ("short", "long")
STRATEGIES = ("agg_after", "agg_with")
FAMILIES = ("movielens", "amazon")
PROFILES_KIND = "profiles"
# How an item column is named in a prompt; columns not listed keep their own name.
FIELD_LABELS = {"class": "genres", "genre": "genres"}
FIELD_CHARACTERS = 300  # a long field (a description, features) is cut here: a history lists many items
HIDDEN_COLUMNS = ("item", "source_id")
MARGIN_TOKENS = 8  # a generated profile can tokenize slightly longer when it is read back inside another prompt
CHARACTERS_PER_TOKEN = 3  # the estimate for an endpoint without a named tokenizer (on the safe side for English)


@dataclass(frozen=True)
class GeneratedProfiles:
    run_id: int
    path: Path
    cached: bool


# histories as prompt data ------------------------------------------------------------------------------------
def dataset_family(source: str, item_columns: Sequence[str]) -> str:
    """movielens or amazon: which wording the templates use. Other sources go by their item fields (genres)."""
    if source in ("movielens", "amazon2023"):
        return "movielens" if source == "movielens" else "amazon"
    return "movielens" if {"class", "genre"} & set(item_columns) else "amazon"


def item_fields(items) -> list[list[tuple[str, str]]]:
    """Indexed by item id: the (label, value) pairs of every non-empty text field, the title first."""
    columns = ["title"] + [column for column in items.columns if column not in ("title", *HIDDEN_COLUMNS)]
    fields: list[list[tuple[str, str]]] = [[] for _ in range(int(items["item"].max()) + 1)]
    for row in items.to_dict("records"):
        pairs = []
        for column in columns:
            value = str(row.get(column, "") or "").strip()
            if value and value.lower() != "nan":
                if len(value) > FIELD_CHARACTERS:
                    value = value[:FIELD_CHARACTERS].rsplit(" ", 1)[0] + " ..."
                pairs.append((FIELD_LABELS.get(column, column), value))
        fields[int(row["item"])] = pairs
    return fields


def rating_text(rating) -> str | None:
    """A rating as the prompt shows it ("4", "3.5"), or None where the source has none."""
    if rating is None or math.isnan(float(rating)):
        return None
    return f"{float(rating):g}"


def training_histories(data, users: int | None = None, max_items: int | None = None) -> dict[int, list[dict]]:
    """user -> their training interactions as prompt items, oldest first; only ``data.train`` is read, so no
    validation or test item can reach a prompt. ``users`` keeps the first N users by id, ``max_items`` each
    user's N most recent interactions."""
    fields = item_fields(data.items)
    train = data.train.sort_values("user")
    if users is not None:
        train = train.head(users)
    has_ratings = "ratings" in train.columns
    histories = {}
    for row in train.to_dict("records"):
        ratings = list(row["ratings"]) if has_ratings else [None] * len(row["items"])
        history = [{"fields": fields[int(item)], "rating": rating_text(rating)}
                   for item, rating in zip(row["items"], ratings)]
        histories[int(row["user"])] = history[-max_items:] if max_items else history
    return histories


# prompts that fit the context ----------------------------------------------------------------------------------
class PromptBuilder:
    """Chat messages for the three tasks (profile, aggregate, update) and whether they fit the context."""

    def __init__(self, prompt: str, family: str, count_tokens: Callable[[list], int], context_length: int,
                 max_tokens: int):
        self.template, self.family = f"profiles/{prompt}", family
        self.count_tokens, self.context_length, self.max_tokens = count_tokens, context_length, max_tokens

    def messages(self, task: str, items: Sequence[dict] = (), profiles: Sequence[str] = (),
                 previous: str | None = None) -> list[dict]:
        text = render_prompt(self.template, task=task, family=self.family, items=list(items),
                             profiles=list(profiles), previous=previous)
        return [{"role": "user", "content": text}]  # one user turn: some chat templates refuse a system role

    def fits(self, messages: list[dict], reserve: int = 0) -> bool:
        return self.count_tokens(messages) + reserve + self.max_tokens <= self.context_length

    def chunks(self, items: list[dict], strategy: str, user: int) -> list[list[dict]]:
        """The history cut by halving until each part fits; under agg_with a part must fit the update prompt
        beside a previous profile of up to max_tokens."""
        if strategy == "agg_after":
            fits = lambda part: self.fits(self.messages("profile", part))
        else:
            fits = lambda part: self.fits(self.messages("update", part, previous=""),
                                          reserve=self.max_tokens + MARGIN_TOKENS)
        return halve_until_fit(items, fits, lambda: SeqrecError(
            f"user {user}: one interaction alone does not fit a {self.context_length}-token context with "
            f"--max-tokens {self.max_tokens}; lower --max-tokens or use a model with a longer context"))

    def aggregation_groups(self, profiles: list[str], user: int) -> list[list[str]]:
        """Partial profiles grouped so that each group's aggregation prompt fits (one group when all fit)."""
        groups = halve_until_fit(profiles, lambda group: self.fits(self.messages("aggregate", profiles=group)),
                                 lambda: SeqrecError(f"user {user}: a partial profile alone does not fit the "
                                                     f"aggregation prompt; lower --max-tokens"))
        if len(groups) == len(profiles) > 1:
            raise SeqrecError(f"user {user}: no two partial profiles fit one aggregation prompt in a "
                              f"{self.context_length}-token context; lower --max-tokens")
        return groups


def halve_until_fit(parts: list, fits: Callable[[list], bool], too_long: Callable[[], SeqrecError]) -> list[list]:
    """``parts`` cut in halves, recursively, until every piece fits (order kept)."""
    if fits(parts):
        return [parts]
    if len(parts) == 1:
        raise too_long()
    middle = len(parts) // 2
    return halve_until_fit(parts[:middle], fits, too_long) + halve_until_fit(parts[middle:], fits, too_long)


def token_counter(backend, tokenizer: str | None) -> Callable[[list], int]:
    """Counts the tokens of chat messages: by the local model's own tokenizer and chat template, a named
    tokenizer for an endpoint, or else an estimate from the text's length (the config's tokens_counted_by)."""
    if hasattr(backend, "prompt_ids"):
        return lambda messages: len(backend.prompt_ids(messages))
    if tokenizer is not None:
        from transformers import AutoTokenizer

        from seqrec.llm.registry import model_record

        loaded = AutoTokenizer.from_pretrained(model_record(tokenizer).path)

        def count(messages: list) -> int:
            if loaded.chat_template:
                text = loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                return len(loaded(text, add_special_tokens=False)["input_ids"])
            return len(loaded("\n".join(message["content"] for message in messages))["input_ids"])

        return count
    return lambda messages: sum(len(message["content"]) for message in messages) // CHARACTERS_PER_TOKEN + 16


# generation --------------------------------------------------------------------------------------------------
class ProfileWriter:
    """Sends rounds of prompts (one per user that needs a call) through the cached backend, in slices, so that
    every finished slice is in the call cache before the next one starts."""

    def __init__(self, cached, decoding, slice_size: int, progress):
        self.cached, self.decoding, self.slice_size, self.progress = cached, decoding, slice_size, progress
        self.calls = self.prompt_tokens = self.completion_tokens = self.truncated = 0
        self.seconds = 0.0

    def generate(self, requests: list[tuple[int, list[dict]]]) -> list[str]:
        """Texts for (user, messages) requests, in order; a failed call stops everything with a clear message."""
        texts = []
        for start in range(0, len(requests), self.slice_size):
            chunk = requests[start:start + self.slice_size]
            started = time.perf_counter()
            results = self.cached.generate([messages for _, messages in chunk], self.decoding)
            self.seconds += time.perf_counter() - started
            for (user, _), result in zip(chunk, results):
                if not hasattr(result, "text"):
                    raise SeqrecError(f"profile generation failed for user {user} after {result.attempts} "
                                      f"attempt(s): {result.error}; the profiles generated so far are in the call "
                                      f"cache: run the same command again to continue")
                self.calls += 1
                self.prompt_tokens += result.prompt_tokens
                self.completion_tokens += result.completion_tokens
                self.truncated += result.finish_reason == "length"
                texts.append(result.text.strip())
            self.progress(len(chunk))
        return texts


def write_agg_after(writer: ProfileWriter, builder: PromptBuilder, chunks: dict[int, list[list[dict]]]) -> dict:
    """Every part profiled (all users' parts in one round), then the parts of each user merged by aggregation
    calls (one per user when the parts fit together, else a tree of them)."""
    requests = [(user, builder.messages("profile", part)) for user, parts in chunks.items() for part in parts]
    texts = iter(writer.generate(requests))
    partial = {user: [next(texts) for _ in parts] for user, parts in chunks.items()}
    while any(len(parts) > 1 for parts in partial.values()):
        plans = {user: builder.aggregation_groups(parts, user) for user, parts in partial.items() if len(parts) > 1}
        requests = [(user, builder.messages("aggregate", profiles=group))
                    for user, groups in plans.items() for group in groups if len(group) > 1]
        merged = iter(writer.generate(requests))
        for user, groups in plans.items():
            partial[user] = [next(merged) if len(group) > 1 else group[0] for group in groups]
    return {user: parts[0] for user, parts in partial.items()}


def write_agg_with(writer: ProfileWriter, builder: PromptBuilder, chunks: dict[int, list[list[dict]]]) -> dict:
    """A first profile from each user's first part, then one update call per further part (round k updates every
    user that has a part k)."""
    first = writer.generate([(user, builder.messages("profile", parts[0])) for user, parts in chunks.items()])
    profiles = dict(zip(chunks, first))
    for round_index in range(1, max(map(len, chunks.values()), default=1)):
        requests = []
        for user, parts in chunks.items():
            if len(parts) > round_index:
                messages = builder.messages("update", parts[round_index], previous=profiles[user])
                if not builder.fits(messages):
                    raise SeqrecError(f"user {user}: the update prompt with the profile so far does not fit the "
                                      f"context; lower --max-tokens")
                requests.append((user, messages))
        for (user, _), text in zip(requests, writer.generate(requests)):
            profiles[user] = text
    return profiles


def templates_digest(prompt: str) -> str:
    """sha256 of the template files a prompt type renders (its own and the shared parts)."""
    folder = resource_dir("templates") / "profiles"
    digest = hashlib.sha256()
    for path in sorted([folder / f"{prompt}.jinja", *folder.glob("_*.jinja")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def check_generation_options(prompt: str, strategy: str, max_tokens: int, temperature: float,
                             users: int | None, max_items: int | None) -> None:
    if prompt not in PROMPTS:
        raise SeqrecError(f"--prompt must be one of {', '.join(PROMPTS)}, not {prompt!r}")
    if strategy not in STRATEGIES:
        raise SeqrecError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if max_tokens < 1 or temperature < 0:
        raise SeqrecError(f"--max-tokens must be at least 1 and --temperature at least 0 (got {max_tokens}, "
                          f"{temperature})")
    if users is not None and users < 1:
        raise SeqrecError(f"--users must be at least 1, not {users}")
    if max_items is not None and max_items < 1:
        raise SeqrecError(f"--max-items must be at least 1, not {max_items}")


def generation_config(dataset: str, llm: str | LLMOptions | None = None, *, prompt: str = "short",
                      strategy: str = "agg_after", max_tokens: int = 512, temperature: float = 0.7, seed: int = 0,
                      users: int | None = None, max_items: int | None = None, context_length: int | None = None,
                      tokenizer: str | None = None, batch_size: int = 16, dtype: str = "auto") -> dict:
    """The fully resolved config of a profiles run, read from the dataset and the model's files without loading
    any weights (so that an experiment can be planned cheaply)."""
    from transformers import AutoConfig

    from seqrec.data.prepare import get_dataset, load_dataset

    check_generation_options(prompt, strategy, max_tokens, temperature, users, max_items)
    llm = LLMOptions.of(llm)
    dataset_row = get_dataset(dataset)
    local = llm.endpoint is None
    if local:
        model_context = getattr(AutoConfig.from_pretrained(llm.record().path), "max_position_embeddings", None)
        counted_by = "model"
    else:
        model_context = None
        counted_by = f"tokenizer:{tokenizer}" if tokenizer is not None else "estimate"
    limit = min(filter(None, (context_length, model_context)), default=None)
    if limit is None:
        raise SeqrecError(f"the context length of {llm.endpoint_model or llm.llm} is unknown: give --context-length")
    return {"dataset": dataset, "dataset_fingerprint": dataset_row.fingerprint,
            "backend": llm.backend_name, "llm": llm.identity(dtype), "prompt": prompt,
            "strategy": strategy, "family": dataset_family(dataset_row.source, load_dataset(dataset).items.columns),
            "templates_sha256": templates_digest(prompt), "max_tokens": max_tokens, "temperature": temperature,
            "seed": seed, "users": users, "max_items": max_items, "context_length": limit,
            "tokens_counted_by": counted_by,
            # a sampled local batch draws from one seeded generator, so its members change with its composition
            "batch_size": batch_size if local else None}


def finished_profiles(config: dict) -> GeneratedProfiles | None:
    """The finished profiles run of this config whose artifact is still on disk."""
    found = open_store().finished_artifact(config, "profiles", PROFILES_KIND)
    return None if found is None else GeneratedProfiles(*found, cached=True)


def generate_profiles(dataset: str, llm: str | LLMOptions | None = None, *, prompt: str = "short",
                      strategy: str = "agg_after", max_tokens: int = 512, temperature: float = 0.7, seed: int = 0,
                      users: int | None = None, max_items: int | None = None, context_length: int | None = None,
                      tokenizer: str | None = None, batch_size: int = 16, dtype: str = "auto",
                      experiment: str | None = None) -> GeneratedProfiles:
    """One profile per training user of ``dataset`` (or of its first ``users``), from all their training
    interactions (as the paper) or their ``max_items`` most recent, written by a registry model (``llm``: an alias
    or run:ID) or an OpenAI-compatible endpoint (``LLMOptions``); an artifact of a ``profiles`` run.

    ``context_length`` caps the context the prompts are fitted to (an endpoint needs it); ``tokenizer`` names a
    registry model whose tokenizer counts an endpoint's tokens (else they are estimated from the text's length).
    """
    from seqrec.data.prepare import load_dataset

    llm = LLMOptions.of(llm)
    config = generation_config(dataset, llm, prompt=prompt, strategy=strategy, max_tokens=max_tokens,
                               temperature=temperature, seed=seed, users=users, max_items=max_items,
                               context_length=context_length, tokenizer=tokenizer, batch_size=batch_size, dtype=dtype)
    found = None if llm.no_cache else finished_profiles(config)
    if found is not None:
        return found
    backend = llm.open(batch_size=batch_size, dtype=dtype)
    try:
        if backend.name == "local" and not backend.capabilities.chat:  # (an endpoint applies its own template)
            raise SeqrecError(f"{llm.llm} has no chat template; profiles are written by an instruct model through its "
                              "chat template (e.g. smollm2-135m-instruct)")
        builder = PromptBuilder(prompt, config["family"], token_counter(backend, tokenizer),
                                config["context_length"], max_tokens)
        histories = training_histories(load_dataset(dataset), users, max_items)
        return profiles_run(config, backend, builder, histories, batch_size, experiment, llm.no_cache)
    finally:
        backend.close()


def profiles_run(config: dict, backend, builder: PromptBuilder, histories: dict[int, list[dict]], batch_size: int,
                 experiment: str | None, no_cache: bool = False) -> GeneratedProfiles:
    """A new run that writes every profile."""
    from seqrec.llm.backends import CachedLLM, Decoding
    from seqrec.progress import counting

    store = open_store()
    strategy = config["strategy"]
    with store.start_run("profiles", config, experiment=experiment, seed=config["seed"],
                         dataset=config["dataset"]) as run:
        cached = CachedLLM(backend, store=store, run_id=run.id, no_cache=no_cache)
        chunks = {user: builder.chunks(items, strategy, user) for user, items in histories.items() if items}
        calls = sum(len(parts) + (len(parts) > 1 and strategy == "agg_after") for parts in chunks.values())
        decoding = Decoding(max_tokens=config["max_tokens"], temperature=config["temperature"], seed=config["seed"])
        with counting(f"profiling {len(chunks):,} users", calls) as advance:
            writer = ProfileWriter(cached, decoding, slice_size=4 * batch_size, progress=advance)
            profiles = (write_agg_after if strategy == "agg_after" else write_agg_with)(writer, builder, chunks)
        path = write_json_atomically(run.dir / "profiles.json", {str(user): profiles[user] for user in sorted(profiles)})
        cached.log_counts(run)
        run.log_metrics({"users": len(profiles), "chunked_users": sum(len(parts) > 1 for parts in chunks.values()),
                         "calls": writer.calls, "prompt_tokens": writer.prompt_tokens,
                         "completion_tokens": writer.completion_tokens, "truncated": writer.truncated,
                         "generation_seconds": writer.seconds,
                         "tokens_per_s": writer.completion_tokens / max(writer.seconds, 1e-9)}, split="profiles")
        run.log_artifact(path, PROFILES_KIND, meta={"dataset": config["dataset"],
                                                    "fingerprint": config["dataset_fingerprint"],
                                                    "prompt": config["prompt"], "strategy": strategy,
                                                    "users": len(profiles), "llm": backend.identity})
    return GeneratedProfiles(run.id, path, cached=False)


def write_json_atomically(path: Path, value) -> Path:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value, ensure_ascii=False, indent=1))
    partial.rename(path)
    return path


# reading profiles back ---------------------------------------------------------------------------------------
def profiles_artifact(reference: int | str):
    """(run, artifact) of a finished profiles run."""
    store = open_store()
    run = store.get_run(run_reference(reference))
    if run.kind != "profiles" or run.status != "finished":
        raise SeqrecError(f"run {run.id} is a {run.status} {run.kind} run, not a finished profiles run "
                          "(see `seqrec profiles generate`)")
    artifacts = [artifact for artifact in store.artifacts(run.id, kind=PROFILES_KIND) if Path(artifact.path).exists()]
    if not artifacts:
        raise SeqrecError(f"the profiles of run {run.id} are missing from {store.run_dir(run.id)}")
    return run, artifacts[-1]


def load_profiles(reference: int | str) -> dict[int, str]:
    _, artifact = profiles_artifact(reference)
    return {int(user): text for user, text in json.loads(Path(artifact.path).read_text()).items()}


def show_profile(reference: int | str, user: int) -> str:
    profiles = load_profiles(reference)
    if user not in profiles:
        raise SeqrecError(f"run {run_reference(reference)} has no profile of user {user} (it has {len(profiles)} "
                          f"users, {min(profiles, default='-')} to {max(profiles, default='-')})")
    return profiles[user]


# embedding ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbeddedProfiles:
    run_id: int
    path: Path
    cached: bool
    note: str | None = None


E5_NAME = re.compile(r"(^|[/_-])e5([_-]|$)", re.IGNORECASE)


def is_e5(*names: str | None) -> bool:
    return any(name and E5_NAME.search(name) for name in names)


def parse_reduce(spec: str) -> tuple[str, int | None]:
    """``none``, ``umap:N`` or ``pca:N``."""
    kind, _, size = spec.partition(":")
    if spec == "none":
        return "none", None
    if kind in ("umap", "pca") and size.isdigit() and int(size) > 0:
        return kind, int(size)
    raise SeqrecError(f"--reduce must be none, umap:N or pca:N (e.g. umap:128), not {spec!r}")


def reduce_vectors(vectors: np.ndarray, fit_rows: np.ndarray, kind: str, size: int | None, seed: int) -> np.ndarray:
    """The vectors in ``size`` dimensions, by a reducer fitted on ``fit_rows`` only and seeded."""
    if kind == "none":
        return vectors
    if size >= len(fit_rows) or size > vectors.shape[1]:
        raise SeqrecError(f"--reduce {kind}:{size} needs more than {size} profiled training users and at most "
                          f"{vectors.shape[1]} dimensions; there are {len(fit_rows)} users of width {vectors.shape[1]}")
    if kind == "pca":
        from sklearn.decomposition import PCA

        reducer = PCA(n_components=size, svd_solver="full", random_state=seed)
    else:
        import umap

        # A fixed random_state makes UMAP repeatable (it then runs single-threaded).
        reducer = umap.UMAP(n_components=size, n_neighbors=min(15, len(fit_rows) - 1), random_state=seed,
                            init="spectral" if size + 1 < len(fit_rows) else "random")
    reducer.fit(vectors[fit_rows])
    return reducer.transform(vectors).astype(np.float32)


def user_embedding_config(profiles: int | str, encoder: str = "e5-large", *, reduce: str = "umap:128",
                          seed: int = 0, max_length: int = 512, e5_prefix: str = "query") -> dict:
    """The fully resolved config of embedding a profiles run, read without loading the encoder."""
    from seqrec.data.prepare import get_dataset
    from seqrec.llm.registry import ALIASES, model_record

    parse_reduce(reduce)
    if e5_prefix not in ("query", "passage"):
        raise SeqrecError(f"--e5-prefix must be query or passage, not {e5_prefix!r}")
    if max_length < 2:
        raise SeqrecError("--max-length must be at least 2")
    profiles_run, artifact = profiles_artifact(profiles)
    dataset_row = get_dataset(profiles_run.dataset)
    if dataset_row.fingerprint != profiles_run.config["dataset_fingerprint"]:
        raise SeqrecError(f"the profiles of run {profiles_run.id} were made for an earlier version of dataset "
                          f"{profiles_run.dataset!r}; generate them again")
    record = model_record(encoder)
    spec = ALIASES.get(encoder)
    prefix = f"{e5_prefix}: " if is_e5(encoder, record.alias, spec.hub_id if spec else None) else ""
    return {"profiles_run": profiles_run.id, "profiles_sha256": artifact.sha256,
            "dataset": profiles_run.dataset, "dataset_fingerprint": dataset_row.fingerprint,
            "encoder": record.alias, "encoder_sha256": record.sha256, "prefix": prefix, "pooling": "mean",
            "normalised": True, "max_length": max_length, "reduce": reduce, "seed": seed, "dtype": "float32"}


def stand_in_note(config: dict) -> str | None:
    """What to tell the user when the encoder is not an E5 model (it then gets no E5 prefix)."""
    if config["prefix"]:
        return None
    return f"{config['encoder']} stands in for multilingual-e5-large, the paper's encoder (no E5 prefix)"


def finished_user_embeddings(config: dict) -> EmbeddedProfiles | None:
    """The finished embed-profiles run of this config whose matrix is still on disk."""
    found = open_store().finished_artifact(config, "embed-profiles", EMBEDDINGS_KIND)
    return None if found is None else EmbeddedProfiles(*found, cached=True, note=stand_in_note(config))


def embed_profiles(profiles: int | str, encoder: str = "e5-large", *, reduce: str = "umap:128", seed: int = 0,
                   batch_size: int = 32, max_length: int = 512, e5_prefix: str = "query",
                   experiment: str | None = None) -> EmbeddedProfiles:
    """One vector per profiled user: ``[num_users + 1, dim]`` (row u is user u; rows without a profile are zeros
    and marked absent), an artifact of an ``embed-profiles`` run.

    E5 encoders read "query: " or "passage: " before each text; E5's authors advise "query: " where embeddings
    are used as features, which is how the guide uses them. Vectors are mean-pooled and L2-normalised (the
    convention of E5 and of sentence-transformers' MiniLM) before the reducer.
    """
    from seqrec.data.prepare import load_dataset
    from seqrec.llm.embed import encode_batches, pad_token_id, prepare_encoder, tokenize
    from seqrec.llm.registry import model_record

    if batch_size < 1:
        raise SeqrecError("--batch-size must be at least 1")
    config = user_embedding_config(profiles, encoder, reduce=reduce, seed=seed, max_length=max_length,
                                   e5_prefix=e5_prefix)
    found = finished_user_embeddings(config)
    if found is not None:
        return found
    kind, size = parse_reduce(reduce)
    note, prefix = stand_in_note(config), config["prefix"]
    profiles_run, artifact = profiles_artifact(profiles)
    texts_by_user = load_profiles(profiles_run.id)
    data = load_dataset(profiles_run.dataset)
    record = model_record(encoder)
    store = open_store()
    training_users = {int(user) for user in data.train["user"]}
    strangers = sorted(set(texts_by_user) - training_users)
    if strangers:
        raise SeqrecError(f"profiles of run {profiles_run.id} name users that are not training users of "
                          f"{profiles_run.dataset!r} (first: {strangers[0]}); they were made for another dataset")
    users = np.asarray(sorted(texts_by_user), dtype=np.int64)
    with store.start_run("embed-profiles", config, experiment=experiment, seed=seed, dataset=profiles_run.dataset,
                         inputs=[artifact]) as run:
        started = time.perf_counter()
        model, tokenizer = prepare_encoder(record.path, "bidirectional", bf16=False)
        token_ids = tokenize(tokenizer, [prefix + texts_by_user[int(user)] for user in users], "mean", max_length)
        vectors = encode_batches(model, token_ids, pad_id=pad_token_id(tokenizer), pooling="mean",
                                 batch_size=batch_size)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        # every profiled user is a training user (checked above), so the reducer is fitted on all of them
        reduced = reduce_vectors(vectors, np.arange(len(users)), kind, size, seed)
        matrix = np.zeros((data.num_users + 1, reduced.shape[1]), dtype=np.float32)
        present = np.zeros(data.num_users + 1, dtype=bool)
        matrix[users], present[users] = reduced, True
        path = run.dir / "user_embeddings.npz"
        partial = run.dir / "user_embeddings.partial.npz"
        np.savez(partial, matrix=matrix, present=present)
        partial.rename(path)
        run.log_metrics({"users": len(users), "dim": matrix.shape[1], "encoder_dim": vectors.shape[1],
                         "seconds": time.perf_counter() - started}, split="embed")
        run.log_artifact(path, EMBEDDINGS_KIND, meta={"dataset": profiles_run.dataset,
                                                      "fingerprint": config["dataset_fingerprint"],
                                                      "dim": int(matrix.shape[1]), "users": len(users),
                                                      "encoder": record.alias, "reduce": reduce, "note": note})
    return EmbeddedProfiles(run.id, path, cached=False, note=note)
