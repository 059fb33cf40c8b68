"""The profile guide loss (the second paper): while a recommender trains, a pooled hidden state of its layer k is
pulled toward the user's LLM-written profile, mapped into the hidden space.

    L = alpha * L_guide + (1 - alpha) * L_rec   for epochs < E,   then   L = L_rec

L_guide is the mean, over the batch's users who have a profile, of d(pool(H_k), M(p)); users without a profile
contribute nothing (they are left out of the mean, not counted as zero errors), and a batch without any has
L_guide = 0. Pools never include padding positions.

The profile side carries a stop-gradient. The paper trains the map M jointly with the recommender; the guide loss
is then lowered by shrinking the map and the pooled states together, or by both settling on the profiles' common
direction, neither of which carries anything about the user (a collapse). By default M is fixed: a seeded random
linear map of the standardised profiles (which keeps their geometry up to a scale, Johnson-Lindenstrauss), so
only the recommender moves. ``--profile-map trainable`` is the paper's joint map, for comparison.

The guide reads the encoder's states through forward hooks during the recommender's own loss, so distillation
costs no second forward pass; the recommender's scores never read a profile.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqrec.errors import SeqrecError
from seqrec.recsys.configs import ProfileConfig
from seqrec.store import file_digest, open_store

GUIDED_MODELS = ("sasrec", "bert4rec")
EXP_RATE = 0.1  # the paper's exponential weights: exp(0.1 * position)
EMBEDDINGS_KIND = "user-embeddings"  # the artifact of `seqrec profiles embed`


# the user embeddings a run distils -----------------------------------------------------------------------------
def run_reference(reference: int | str) -> int:
    """A run id from ``7`` or ``run:7``."""
    text = str(reference).removeprefix("run:")
    if not text.isdigit():
        raise SeqrecError(f"name a run as ID or run:ID, not {reference!r}")
    return int(text)


def embeddings_artifact(reference: str):
    """The user-embeddings artifact of a finished ``seqrec profiles embed`` run named ``run:ID`` (or ``ID``)."""
    store = open_store()
    run = store.get_run(run_reference(reference))
    found = [artifact for artifact in store.artifacts(run.id, kind=EMBEDDINGS_KIND) if Path(artifact.path).exists()]
    if run.kind != "embed-profiles" or run.status != "finished" or not found:
        raise SeqrecError(f"--profiles {reference}: run {run.id} is a {run.status} {run.kind} run without user "
                          "embeddings; give the run of `seqrec profiles embed`")
    return found[-1]


def load_user_embeddings(reference: str, dataset_fingerprint: str, num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(matrix [num_users + 1, dim], present [num_users + 1]) checked against the dataset being trained."""
    artifact = embeddings_artifact(reference)
    if artifact.meta.get("fingerprint") != dataset_fingerprint:
        raise SeqrecError(f"--profiles {reference}: these profiles were made for dataset "
                          f"{artifact.meta.get('dataset')!r} (another dataset or another version of it), not the one "
                          "being trained")
    with np.load(artifact.path) as stored:
        matrix, present = stored["matrix"], stored["present"]
    if matrix.shape[0] != num_users + 1:
        raise SeqrecError(f"--profiles {reference}: {matrix.shape[0]} rows for a dataset of {num_users} users")
    return matrix, present


def guide_identity(model: str, config: ProfileConfig, model_config, train_config, dataset_fingerprint: str,
                   num_users: int) -> dict:
    """What profile distillation adds to a training run's resolved config (nothing when it is off), every value
    checked against the model and the loop first."""
    identity = {"report_last_epoch": True} if config.report_last_epoch else {}
    if config.profiles is None:
        return identity
    if model not in GUIDED_MODELS:
        raise SeqrecError(f"--profiles: profile distillation guides a transformer's hidden states; it applies to "
                          f"{' and '.join(GUIDED_MODELS)}, not {model}")
    if config.profile_layer > model_config.layers:
        raise SeqrecError(f"--profile-layer {config.profile_layer}: {model} has {model_config.layers} transformer "
                          f"block(s); choose 1 to {model_config.layers}")
    if config.distill_epochs is not None and config.distill_epochs > train_config.epochs:
        raise SeqrecError(f"--distill-epochs {config.distill_epochs} is beyond --epochs {train_config.epochs}")
    matrix, _ = load_user_embeddings(config.profiles, dataset_fingerprint, num_users)
    if config.profile_map == "none" and matrix.shape[1] != model_config.hidden:
        raise SeqrecError(f"--profile-map none: the profile embeddings are {matrix.shape[1]}-dimensional but the "
                          f"model's hidden size is {model_config.hidden}; use a map (fixed or trainable) or embed "
                          f"with --reduce pca:{model_config.hidden}")
    fields = {name: getattr(config, name) for name in ProfileConfig.__dataclass_fields__}
    return {**identity, **fields,
            "profile_embeddings_sha256": file_digest(Path(embeddings_artifact(config.profiles).path))[0]}


# pooling ---------------------------------------------------------------------------------------------------------
def pool_states(states: torch.Tensor, real: torch.Tensor, how: str, query: torch.Tensor | None = None) -> torch.Tensor:
    """[batch, hidden] from states [batch, L, hidden] and ``real`` [batch, L] (False at padding), which never
    contributes to any pool."""
    length = states.shape[1]
    if how == "mean":
        weights = real.float()
    elif how == "exp":
        positions = torch.arange(length, device=states.device, dtype=torch.float32)
        weights = torch.exp(EXP_RATE * (positions - (length - 1))) * real  # shifted: the same ratios, no overflow
    elif how == "last":
        newest = length - 1 - real.flip(1).float().argmax(1)  # the last real position (histories are left-padded)
        weights = F.one_hot(newest, length).float()
    elif how == "attention":
        logits = (states @ query) / math.sqrt(states.shape[-1])
        weights = torch.softmax(logits.float().masked_fill(~real, float("-inf")), dim=1)
    else:
        raise SeqrecError(f"unknown --profile-pool {how!r}")
    weights = weights.to(states.dtype)
    return (weights.unsqueeze(-1) * states).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-12)


def guide_distance(pooled: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "mse":
        return F.mse_loss(pooled, target)
    if loss == "rmse":
        return torch.sqrt(F.mse_loss(pooled, target) + 1e-12)
    return (1 - F.cosine_similarity(pooled, target, dim=-1)).mean()


# the guided model --------------------------------------------------------------------------------------------
class ProfileGuided(nn.Module):
    """A recommender trained with the guide loss. ``scores`` is the recommender's own: profiles are training data.

    ``fit`` calls ``start_epoch(epoch)`` before each epoch, which switches the guide off from epoch E on.
    """

    def __init__(self, recommender: nn.Module, config: ProfileConfig, matrix: np.ndarray, present: np.ndarray,
                 seed: int):
        super().__init__()
        self.recommender, self.config = recommender, config
        self.distilling = True
        hidden = recommender.config.hidden
        profiles = torch.as_tensor(matrix, dtype=torch.float32)
        if config.profile_map == "fixed":  # standardised over the profiled users: no common direction to settle on
            rows = profiles[torch.as_tensor(present)]
            profiles = (profiles - rows.mean(0)) / rows.std(0, correction=0).clamp_min(1e-6)
        # data, not weights: never in a checkpoint
        self.register_buffer("profiles", profiles * torch.as_tensor(present)[:, None], persistent=False)
        self.register_buffer("present", torch.as_tensor(present, dtype=torch.bool), persistent=False)
        width = profiles.shape[1]
        if config.profile_map == "none":
            self.map = nn.Identity()
        else:
            self.map = nn.Linear(width, hidden, bias=config.profile_map == "trainable")
            if config.profile_map == "fixed":
                generator = torch.Generator().manual_seed(seed)
                with torch.no_grad():
                    self.map.weight.copy_(torch.randn(hidden, width, generator=generator) / math.sqrt(width))
                self.map.requires_grad_(False)
        self.query = nn.Parameter(torch.randn(hidden) * 0.02) if config.profile_pool == "attention" else None

    def start_epoch(self, epoch: int) -> None:
        self.distilling = self.config.distill_epochs is None or epoch < self.config.distill_epochs

    def scores(self, users: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        return self.recommender.scores(users, histories)

    def forward(self, users: torch.Tensor, histories: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.distilling:
            return self.recommender.loss(users, histories, targets)
        rec_loss, states, real = self.loss_with_states(users, histories, targets)
        guide = self.guide_loss(users, states, real)
        if self.config.scale_guide:
            guide = guide * (rec_loss.detach() / guide.detach().clamp_min(1e-12))
        alpha = self.config.profile_weight
        return alpha * guide + (1 - alpha) * rec_loss

    def loss_with_states(self, users, histories, targets):
        """The recommender's own loss, and what its encoder saw on the way: block k's output states and which
        positions held real items (the encoder's token ids, masked items included, are 0 only at padding)."""
        captured = {}
        encoder = self.recommender.encoder
        hooks = [encoder.register_forward_pre_hook(lambda module, args: captured.update(ids=args[1])),
                 encoder.blocks[self.config.profile_layer - 1].register_forward_hook(
                     lambda module, args, output: captured.update(states=output))]
        try:
            rec_loss = self.recommender.loss(users, histories, targets)
        finally:
            for hook in hooks:
                hook.remove()
        return rec_loss, captured["states"], captured["ids"] != 0

    def guide_loss(self, users: torch.Tensor, states: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The mean distance over the batch's users that have a profile; 0 (still in the graph) when none has."""
        has_profile = self.present[users]
        if not has_profile.any():
            return states.sum() * 0.0
        pooled = pool_states(states[has_profile], real[has_profile], self.config.profile_pool, self.query)
        target = self.map(self.profiles[users[has_profile]])
        if self.config.profile_map != "trainable":
            target = target.detach()  # the stop-gradient on the profile side
        return guide_distance(pooled.float(), target.float(), self.config.profile_loss)


def with_profile_guide(recommender: nn.Module, config: ProfileConfig, data, dataset_fingerprint: str,
                       seed: int) -> tuple[nn.Module, dict[str, float]]:
    """(the model ``fit`` trains, what to record about the profiles): the recommender itself when distillation is
    off, else the guided recommender and how many training users have a profile (the others are allowed)."""
    if config.profiles is None:
        return recommender, {}
    matrix, present = load_user_embeddings(config.profiles, dataset_fingerprint, data.num_users)
    profiled = present[data.train["user"].to_numpy(np.int64)]
    counts = {"users_with_profile": int(profiled.sum()), "users_without_profile": int((~profiled).sum())}
    return ProfileGuided(recommender, config, matrix, present, seed), counts
