"""What a run trains, as a hash: two runs with the same training fingerprint are one training run.

A run's training is determined by its model, task, rewards, train noise, optimiser and GRPO options
and its seed; evaluating it differently, stopping it at another step or writing it elsewhere changes
what is *seen* of it, not what it *is*. The corpus had one run twice under two names
(``explore_trial_0005`` and ``lr_trial_0002``: the same configuration, bit-identical training rows,
50 steps evaluated on 100 facts in one study and 30 steps on 50 facts in the other), and counted it as
two. Wherever runs are pooled (the early-warning corpus, the real-curve test set of the detectors, a
study's cells) they are de-duplicated by this fingerprint.

Left out of it (:data:`NOT_TRAINING`): evaluation (splits, size, interval, noise, batch, samples), checkpointing,
stopping rules that only end a run (``stop_on_collapse``, ``patience``: the training rows of a stopped run
are a prefix of the full one's), bookkeeping (paths, threads, report, fault thresholds) and
``max_steps`` when nothing in the run depends on it (a constant learning rate without a warm-up ratio
and a constant train noise). The preset and the reward/noise overrides enter as what they resolve to
(the weights, the train noise level and modes; the modes do not count at level 0), so two spellings of
one recipe hash equal. A rollback (``--on-collapse rollback``) changes training after a collapse, and
when it fires depends on the evals: then the eval options count too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.train.config import ResolvedTrain, TrainConfig

#: Options that do not change a run's training rows (see the module docstring).
NOT_TRAINING = frozenset({
    "eval_split", "eval_limit", "eval_every", "eval_noise", "eval_noise_modes", "eval_batch_size", "save_every",
    "stop_after", "threads", "output_dir", "data_dir", "resume", "report", "stop_on_collapse", "patience",
    "keep_peak", "kl_alarm", "zero_std_patience", "vllm", "preset", "reward_weights", "train_noise",
    "train_noise_modes", "on_collapse", "rollback_lr_factor", "max_rollbacks", "selection_split", "eval_reported",
    "eval_samples", "eval_temperature", "report_to"})
#: Options that count again when the run rolls back on a collapse (they decide when it does).
ROLLBACK_KEYS = ("eval_split", "eval_limit", "eval_every", "eval_noise", "eval_noise_modes", "on_collapse",
                 "rollback_lr_factor", "max_rollbacks", "patience", "selection_split", "eval_samples",
                 "eval_temperature")


def training_facts(cfg: TrainConfig, resolved: ResolvedTrain | dict[str, Any]) -> dict[str, Any]:
    """The options and resolved values that determine a run's training (see the module docstring).
    ``resolved``: the run's :class:`ResolvedTrain`, or the ``resolved`` section its ``config.json`` recorded.
    Reward weights of 0 are left out (a reward added to the registry later does not change old runs' hash).

    >>> from harness.train.config import resolve
    >>> cfg = TrainConfig(task="apollo3_micro", preset="rezero", max_steps=30, eval_limit=50)
    >>> facts = training_facts(cfg, resolve(cfg))
    >>> "max_steps" in facts, "eval_limit" in facts, facts["train_noise"]
    (False, False, {'level': 0.5, 'modes': ['drop_gold']})
    """
    if isinstance(resolved, ResolvedTrain):
        resolved = resolved.to_dict(cfg)["resolved"]
    options = cfg.model_dump(mode="json")
    facts = {k: v for k, v in options.items() if k not in NOT_TRAINING}
    if cfg.collapse_action == "rollback":
        facts.update({k: options[k] for k in ROLLBACK_KEYS})
        facts["eval_noise"] = _noise(resolved.get("eval_noise"))
    steps_matter = (cfg.lr_scheduler != "constant" or bool(cfg.warmup_ratio)
                    or cfg.train_noise_schedule != "constant")
    if not steps_matter:
        facts.pop("max_steps")
    weights = {k: float(v) for k, v in (resolved.get("reward_weights") or {}).items() if v}
    facts.update(reward_weights=weights, train_noise=_noise(resolved.get("train_noise")),
                 **{k: resolved.get(k) for k in ("reward_semantics", "stop_after_action", "max_turns",
                                                  "max_new_tokens")})
    return facts


def _noise(noise: dict | None) -> dict[str, Any]:
    """A noise config as the fingerprint sees it: level and modes, the modes dropped at level 0."""
    noise = dict(noise or {"level": 0.0})
    out = {"level": float(noise.get("level", 0.0)), "modes": list(noise.get("modes") or [])}
    if out["level"] == 0:
        out.pop("modes")
    return out


def training_fingerprint(cfg: TrainConfig, resolved: ResolvedTrain | dict[str, Any] | None = None) -> str:
    """A 16-hex-digit hash of :func:`training_facts`.

    >>> a = training_fingerprint(TrainConfig(task="apollo3_micro", max_steps=30, eval_limit=50, seed=1))
    >>> b = training_fingerprint(TrainConfig(task="apollo3_micro", max_steps=50, eval_every=2, seed=1))
    >>> c = training_fingerprint(TrainConfig(task="apollo3_micro", max_steps=50, seed=2))
    >>> a == b, a == c
    (True, False)
    """
    from harness.train.config import resolve

    resolved = resolved or resolve(cfg)
    blob = json.dumps(training_facts(cfg, resolved), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_from_options(options: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from a run's recorded options (``config.json``'s ``train`` section, or a corpus manifest's
    facts): old spellings renamed, options this version no longer has dropped, the rest at their defaults."""
    from harness.core.options import canonical

    values = canonical(TrainConfig, dict(options))
    return TrainConfig.build(**{k: v for k, v in values.items() if k in TrainConfig.model_fields})


def run_fingerprint(run_dir: str | Path) -> str | None:
    """The training fingerprint of a run directory (from its ``config.json``); None without one."""
    from harness.core.rundir import read_options

    options, resolved = read_options(run_dir)
    if not options:
        return None
    cfg = config_from_options(options)
    return training_fingerprint(cfg, resolved or None)
