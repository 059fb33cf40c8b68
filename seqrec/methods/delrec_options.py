"""DELRec's options, declared once (no torch here: the CLI reads them to build its flags).

Stage 1 (``distill``) and stage 2 (``finetune``) share the prompt settings; each has its own loop defaults (the
paper's Lion learning rates and weight decays: ``lr`` and ``weight_decay`` are Lion's here, not AdamW's).
"""

from __future__ import annotations

from dataclasses import dataclass

from seqrec.training.config import TrainConfig
from seqrec.training.options import option, with_defaults

# The paper's ablations (Tables III and IV): which stage each one changes.
DISTILL_ABLATIONS = ("wo_ta", "wo_rps", "w_udpsm")
FINETUNE_ABLATIONS = ("wo_sp", "w_mcp", "w_usp", "w_ulsr")
ABLATIONS = ("none", *DISTILL_ABLATIONS, *FINETUNE_ABLATIONS)
VERBALIZERS = ("title", "first_token")
PROMPT_FORMATS = ("plain", "chat")
# How the paper names the conventional models and the ablations (Tables II-IV); reports and the dashboard use them.
MODEL_NAMES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "caser": "Caser", "bert4rec": "BERT4Rec"}
ABLATION_LABELS = {"none": "Default", "wo_ta": "w/o TA", "wo_rps": "w/o RPS", "w_udpsm": "w UDPSM", "wo_sp": "w/o SP",
                   "w_mcp": "w MCP", "w_usp": "w USP", "w_ulsr": "w ULSR"}


@dataclass
class PromptConfig:
    """What both stages' prompts hold and how a candidate is scored."""

    history: int = option(10, "The user's most recent items shown in a prompt.", low=1, high=200)
    candidates: int = option(15, "Candidates per prompt: the label and candidates - 1 uniform random items the user "
                             "never had (evaluation: the stored sets of --eval sampled:N).", low=2, high=1000)
    verbalizer: str = option("title", "title: a candidate's score is its title's mean token log-likelihood at the "
                             "answer; first_token: the log-probability of its title's first token (the authors'; "
                             "titles sharing a first token tie).", choices=VERBALIZERS)
    title_tokens: int = option(32, "Longest candidate title scored, in tokens.", low=1, high=512)
    item_word: str = option("item", "What the prompts call an item (movie, game, product).")
    prompt_format: str = option("plain", "plain: the prompt as text (base models); chat: one user turn in the "
                                "model's chat template, the answer where the assistant's turn starts (instruct "
                                "models).", choices=PROMPT_FORMATS)
    ablation: str = option("none", "A variant of the paper's ablations: distill takes wo_ta, wo_rps, w_udpsm; "
                           "finetune takes wo_sp, w_mcp, w_usp, w_ulsr.", choices=ABLATIONS)
    max_examples: int | None = option(None, "Training prompts drawn (seeded) from every prefix of the training "
                                      "sequences; none: all.", low=1, high=100_000_000)
    valid_examples: int = option(200, "Validation prompts, drawn (seeded) from the validation split.", low=1, high=10_000_000)
    warmup_steps: int = option(20, "Linear learning-rate warm-up, in optimizer steps.", low=0, high=10_000_000)
    rank_start: int = option(12, "AdaLoRA's initial rank of every adapter.", low=1, high=1024)
    rank_target: int = option(8, "AdaLoRA's target average rank.", low=1, high=1024)


@dataclass
class DistillStageConfig(PromptConfig):
    """Stage 1: the soft prompt that distils the conventional model's pattern (TA + RPS)."""

    soft_tokens: int = option(100, "Soft-prompt vectors (the paper's gains level off after 80).", low=1, high=4096)
    icl_examples: int = option(4, "Temporal Analysis: in-context examples from the user's own sequence (4 for "
                               "MovieLens-100K and Beauty, 6 for Steam and Home & Kitchen).", low=0, high=100)
    top_h: int = option(10, "Recommendation Pattern Simulating: the conventional model's top-h recommendations "
                        "(label: its top-1; the prompt shows the others).", low=1, high=10_000)
    soft_prompts: str = option("shared", "shared: one soft prompt for both tasks (the paper); per_task: one of "
                               "soft_tokens vectors per task (the authors' code), stage 2 showing both, TA's first.",
                               choices=("shared", "per_task"))
    task_weights: str = option("dynamic", "dynamic: each task weighted by sqrt(loss / first loss) / gradient norm, "
                               "normalised to sum to the number of tasks; equal: 1 each.",
                               choices=("dynamic", "equal"))


@dataclass
class FinetuneStageConfig(PromptConfig):
    """Stage 2: the LLM fine-tuned with AdaLoRA on the ground truth, the distilled soft prompt frozen."""

    soft_tokens: int = option(100, "w_usp only: length of the untrained random soft prompt (otherwise the distill "
                              "run's).", low=1, high=4096)
    test_examples: int | None = option(None, "Test examples scored, drawn (seeded) from the test split; none: all.", low=1,
                                       high=100_000_000)


DistillTraining = with_defaults(TrainConfig, "DistillTraining", epochs=1, batch_size=8, lr=5e-3, weight_decay=1e-5,
                                patience=2, metric="neg_loss")
FinetuneTraining = with_defaults(TrainConfig, "FinetuneTraining", epochs=1, batch_size=8, lr=1e-4,
                                 weight_decay=1e-6, patience=2, metric="ndcg@10")
