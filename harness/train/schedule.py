"""Train noise over a run: constant, or ZeroSearch's curriculum (arXiv 2505.04588).

ZeroSearch raises the probability of a noisy search result over training, from ``p_s`` to ``p_e`` on an
exponential curve with base ``b`` (its default 4):

    p_i = p_s + b^(i/m - 1) (p_e - p_s)        i: the step being trained, m: the run's steps

so the noise starts at ``p_s + (p_e - p_s) / b`` at the first step and reaches ``p_e`` at the last; most
of the rise comes late. Here ``p_e`` is the run's train noise level (``--train-noise`` or the preset's)
and ``p_s`` is ``--train-noise-start``; the modes stay the run's. The level of each step is a pure
function of the step, so a resumed run draws the same noise, and the curve records it
(``train_noise_level``).
"""

from __future__ import annotations

from harness.core.config import NoiseConfig, make_noise


def curriculum_level(step: int, max_steps: int, start: float, end: float, base: float = 4.0) -> float:
    """ZeroSearch's noise level at ``step`` of ``max_steps`` (see the module docstring).

    >>> [round(curriculum_level(i, 10, 0.0, 0.8), 3) for i in (0, 5, 10)]
    [0.2, 0.4, 0.8]
    >>> curriculum_level(3, 10, 0.5, 0.5)
    0.5
    """
    if max_steps < 1 or base <= 1:
        raise ValueError(f"need max_steps >= 1 and base > 1, got {max_steps} and {base}")
    frac = min(max(step / max_steps, 0.0), 1.0)
    return float(min(max(start + base ** (frac - 1) * (end - start), 0.0), 1.0))


def noise_schedule(kind: str, noise: NoiseConfig, max_steps: int, start: float = 0.0, base: float = 4.0):
    """``step -> NoiseConfig`` for the run's train noise, or None when it is constant.

    >>> at = noise_schedule("curriculum", NoiseConfig(level=0.5), 20)
    >>> at(20).level, at(20).modes
    (0.5, ('drop_gold',))
    >>> noise_schedule("constant", NoiseConfig(level=0.5), 20) is None
    True
    """
    if kind == "constant":
        return None
    if kind != "curriculum":
        raise ValueError(f"unknown train noise schedule {kind!r}")

    def at(step: int) -> NoiseConfig:
        return make_noise(curriculum_level(step, max_steps, start, noise.level, base), noise.modes)

    return at
