"""The GRPO trainer class of a run: TRL's, or TRL's with the one remedy TRL 1.16 lacks.

``--drop-zero-std-groups`` leaves out of the loss every group of ``num_generations`` episodes whose
rewards are all equal (DAPO's dynamic-sampling filter, arXiv 2503.14476, without its re-sampling: the
batch shrinks instead of being refilled). Such a group has advantage 0 for every episode under any
``scale_rewards``, so it carries no policy gradient; what dropping it changes is that it no longer dilutes
the token-mean of the loss (``dapo``, ``bnpo``: the normaliser counts only the kept tokens) and no longer
feeds the KL and entropy terms. TRL 1.16 logs ``frac_reward_zero_std`` but has no such filter (checked:
``GRPOConfig`` has no option for it and ``_generate_and_score_completions`` keeps every group), so the
subclass below masks those rows after TRL has scored the batch, through the same ``completion_mask`` TRL's
``mask_truncated_completions`` uses. The share of groups dropped is logged as ``frac_groups_dropped``.
"""

from __future__ import annotations

from typing import Any

from harness.train.config import TrainConfig


def zero_std_rows(advantages: list[float], group: int) -> list[bool]:
    """Per row: is it in a group whose advantages are all 0 (a group with equal rewards)?

    >>> zero_std_rows([0.0, 0.0, 0.7, -0.7, 0.0, 0.0], 2)
    [True, True, False, False, True, True]
    """
    if group < 1 or len(advantages) % group:
        raise ValueError(f"{len(advantages)} rows do not split into groups of {group}")
    out = []
    for i in range(0, len(advantages), group):
        flat = all(a == 0 for a in advantages[i : i + group])
        out += [flat] * group
    return out


def trainer_class(cfg: TrainConfig):
    """``trl.GRPOTrainer``, or its subclass that drops zero-variance groups when ``cfg`` asks for it."""
    from trl import GRPOTrainer

    if not cfg.drop_zero_std_groups:
        return GRPOTrainer

    class ZeroStdFilterTrainer(GRPOTrainer):
        """GRPOTrainer whose loss leaves out groups with equal rewards (see the module docstring)."""

        def _generate_and_score_completions(self, inputs) -> dict[str, Any]:
            out = super()._generate_and_score_completions(inputs)
            mode = "train" if self.model.training else "eval"
            drop = zero_std_rows(out["advantages"].tolist(), self.num_generations)
            keep = 1 - out["completion_mask"].new_tensor(drop, dtype=out["completion_mask"].dtype)
            out["completion_mask"] = out["completion_mask"] * keep.unsqueeze(1)
            if "tool_mask" in out:
                out["tool_mask"] = out["tool_mask"] * keep.unsqueeze(1)
            loss_mask = out["completion_mask"] if "tool_mask" not in out else out["completion_mask"] * out["tool_mask"]
            out["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
            self._metrics[mode]["frac_groups_dropped"].append(sum(drop) / max(len(drop), 1))
            return out

    return ZeroStdFilterTrainer
