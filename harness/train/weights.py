"""How far training moved the weights: ``||w_t - w_0|| / ||w_0||`` over the trainable weights, on a fixed sample.

A copy of every weight would double a large model's memory, so :class:`WeightSketch` keeps, per trainable
tensor, at most :data:`PER_TENSOR` evenly spaced entries (all of a small tensor), on the CPU. The
relative change on that sample is what ``curve.csv``'s ``weight_change`` column holds at each eval, and
what :mod:`harness.stats.learning` reads to tell "the weights did not move" from "they moved, and the
accuracy did not". A run keeps its step-0 sketch in ``RUN_DIR/weights_start.pt`` so a resumed run
measures from the same start.
"""

from __future__ import annotations

import math
from pathlib import Path

#: Entries kept per trainable tensor.
PER_TENSOR = 4096
START_FILE = "weights_start.pt"


class WeightSketch:
    """The sampled entries of a model's trainable weights, by parameter name."""

    def __init__(self, values: dict):
        self.values = values

    @staticmethod
    def _index(numel: int):
        """Evenly spaced positions in a tensor of ``numel`` entries, first and last included; in integers
        (a float32 ``linspace`` rounds ``numel - 1`` past the end once numel exceeds 2**24: SmolLM2's
        embedding has 28,311,552 entries).

        >>> idx = WeightSketch._index(28_311_552)
        >>> len(idx), int(idx[0]), int(idx[-1])
        (4096, 0, 28311551)
        >>> WeightSketch._index(100) is None
        True
        """
        import torch

        if numel <= PER_TENSOR:
            return None
        return torch.arange(PER_TENSOR, dtype=torch.int64) * (numel - 1) // (PER_TENSOR - 1)

    @classmethod
    def take(cls, model) -> WeightSketch:
        import torch

        values = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                flat = p.detach().reshape(-1)
                idx = cls._index(flat.numel())
                sample = flat if idx is None else flat[idx.to(flat.device)]
                values[name] = sample.to("cpu", torch.float32).clone()
        return cls(values)

    def change(self, model) -> float | None:
        """``||w - w_0|| / ||w_0||`` on the sample (None when no sampled weight is trainable now, or w_0 is 0)."""
        now = WeightSketch.take(model).values
        shared = [k for k in self.values if k in now]
        if not shared:
            return None
        diff = sum(float(((now[k] - self.values[k]) ** 2).sum()) for k in shared)
        base = sum(float((self.values[k] ** 2).sum()) for k in shared)
        return math.sqrt(diff / base) if base > 0 else None

    def save(self, path: Path) -> None:
        import torch

        tmp = Path(path).with_suffix(".tmp")
        torch.save(self.values, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> WeightSketch | None:
        import torch

        try:
            return cls(torch.load(path, map_location="cpu", weights_only=True))
        except (OSError, RuntimeError, EOFError, ValueError):
            return None
