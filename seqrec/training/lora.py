"""Low-rank adapters (peft) on an LLM, set up one way for every trainer."""

from __future__ import annotations

import torch
from torch import nn


def add_lora(model: nn.Module, rank: int, targets: str | list[str] = "all-linear", dropout: float = 0.0) -> nn.Module:
    """``model`` with LoRA adapters of ``rank`` on ``targets`` (alpha = 2 x rank); only the adapters train."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets,
                                            lora_dropout=dropout))


def add_adalora(model: nn.Module, total_steps: int, targets: list[str], init_rank: int = 12, target_rank: int = 8,
                orthogonal_weight: float = 0.5) -> nn.Module:
    """``model`` with AdaLoRA adapters (Zhang et al., 2023) on ``targets``: SVD-shaped updates P diag(E) Q whose
    ranks start at ``init_rank`` and are pruned to an average of ``target_rank`` by importance.

    The budget follows peft's cubic schedule over ``total_steps``: the first and last tenth keep the ranks fixed.
    The trainer must call ``adalora_step`` after every optimizer step and add ``adalora_penalty`` to its loss
    (peft adds it only to a loss the wrapped model returns itself).
    """
    from peft import AdaLoraConfig, get_peft_model

    margin = total_steps // 10
    return get_peft_model(model, AdaLoraConfig(init_r=init_rank, target_r=target_rank, lora_alpha=2 * init_rank,
                                               target_modules=targets, total_step=total_steps, tinit=margin,
                                               tfinal=margin, orth_reg_weight=orthogonal_weight))


def adalora_step(model: nn.Module, step: int) -> None:
    """Update the importance scores from this step's gradients and re-allocate the ranks (call before zero_grad)."""
    model.base_model.update_and_allocate(step)


def adalora_penalty(model: nn.Module) -> torch.Tensor:
    """The orthogonality regulariser ||P^T P - I||_F + ||Q Q^T - I||_F averaged over the adapters, times its weight."""
    name = model.active_adapter
    weight = model.peft_config[name].orth_reg_weight
    terms = []
    for parameter_name, parameter in model.named_parameters():
        if parameter.requires_grad and (f"lora_A.{name}" in parameter_name or f"lora_B.{name}" in parameter_name):
            gram = parameter @ parameter.T if "lora_A" in parameter_name else parameter.T @ parameter
            terms.append(torch.linalg.matrix_norm(gram - torch.eye(len(gram), device=gram.device, dtype=gram.dtype)))
    return weight * torch.stack(terms).mean() if terms else torch.zeros(())


class AdaLoraAllocatorState:
    """The rank allocator's running importance scores and rank pattern, which live outside the model's
    parameters: registered with ``accelerator.register_for_checkpointing`` so that a resumed run allocates the
    same ranks as an uninterrupted one."""

    def __init__(self, model: nn.Module):
        self.model = model

    def state_dict(self) -> dict:
        allocator = self.model.base_model.rankallocator
        return {"ipt": allocator.ipt, "exp_avg_ipt": allocator.exp_avg_ipt, "exp_avg_unc": allocator.exp_avg_unc,
                "rank_pattern": self.model.peft_config[self.model.active_adapter].rank_pattern}

    def load_state_dict(self, state: dict) -> None:
        allocator = self.model.base_model.rankallocator
        device = next(self.model.parameters()).device  # Accelerate reads custom states onto the CPU
        allocator.ipt, allocator.exp_avg_ipt, allocator.exp_avg_unc = (
            {name: tensor.to(device) for name, tensor in state[key].items()}
            for key in ("ipt", "exp_avg_ipt", "exp_avg_unc"))
        self.model.peft_config[self.model.active_adapter].rank_pattern = state["rank_pattern"]
