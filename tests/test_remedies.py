"""Collapse remedies as options: TRL's stability settings, the zero-variance filter, the noise curriculum,
``--on-collapse rollback`` (with resume), and the training fingerprint that de-duplicates runs."""

from __future__ import annotations

import csv
import json

import pytest

from harness.core.errors import ConfigError
from harness.train.config import LOSS_TYPES, TrainConfig, resolve
from harness.train.fingerprint import training_fingerprint
from harness.train.schedule import curriculum_level, noise_schedule
from tests.scripted import scripted_run

pytestmark = pytest.mark.tier("unit")


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("values, message", [
    ({"loss_type": "luspo"}, "importance_sampling_level sequence"),
    ({"sync_ref_model": True, "beta": 0.0}, "beta > 0"),
    ({"sync_ref_model": True, "lora_rank": 8}, "full fine-tuning"),
    ({"on_collapse": "rewind"}, "on-collapse"),
    ({"rollback_lr_factor": 1.5}, "rollback-lr-factor"),
    ({"scale_rewards": "std"}, "scale-rewards"),
])
def test_remedy_options_are_checked(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.build(**values)


def test_collapse_action_and_ablation_keys():
    assert TrainConfig(on_collapse="rollback").collapse_action == "rollback"
    assert TrainConfig(stop_on_collapse=True).collapse_action == "stop"
    assert TrainConfig().collapse_action is None
    for key in ("loss_type", "importance_sampling_level", "epsilon_high", "entropy_coef", "scale_rewards",
                "mask_truncated_completions", "sync_ref_model", "ref_model_mixup_alpha", "ref_model_sync_steps",
                "beta", "drop_zero_std_groups", "train_noise_schedule", "on_collapse", "rollback_lr_factor"):
        assert key in TrainConfig.model_fields  # a TrainConfig field is an option, a --config key and an ablation key


def test_an_ablation_can_sweep_the_remedies():
    from harness.sweep.ablation import Ablation

    ab = Ablation(name="remedies", task="apollo3_micro", base={"model": "micro", "max_steps": 30},
                  search_space={"epsilon_high": {"type": "categorical", "choices": [0.2, 0.28]},
                                "on_collapse": {"type": "categorical", "choices": ["stop", "rollback"]},
                                "entropy_coef": {"type": "categorical", "choices": [0.0, 0.01]}})
    from harness.sweep.trial import trial_config

    cfg = trial_config(ab, {"epsilon_high": 0.28, "on_collapse": "rollback", "entropy_coef": 0.01}, {}, ".")
    assert cfg["epsilon_high"] == 0.28 and cfg["on_collapse"] == "rollback" and cfg["entropy_coef"] == 0.01


def test_zerosearch_curriculum():
    # p_i = p_s + b^(i/m - 1) (p_e - p_s): p_e at the last step, p_s + (p_e - p_s) / b at step 0, convex
    levels = [curriculum_level(i, 20, 0.1, 0.9, 4.0) for i in range(21)]
    assert levels[0] == pytest.approx(0.1 + 0.8 / 4) and levels[-1] == pytest.approx(0.9)
    assert levels[10] == pytest.approx(0.1 + 0.8 / 2)
    assert all(b > a for a, b in zip(levels, levels[1:]))
    assert all((c - b) > (b - a) for a, b, c in zip(levels, levels[1:], levels[2:]))
    from harness.core.config import NoiseConfig

    at = noise_schedule("curriculum", NoiseConfig(level=0.8, modes=("drop_gold", "random")), 10, start=0.0)
    assert [round(at(s).level, 4) for s in (0, 10)] == [0.2, 0.8] and at(3).modes == ("drop_gold", "random")


def test_training_fingerprint_ignores_what_does_not_train():
    base = {"task": "apollo3_micro", "model": "micro", "seed": 1, "learning_rate": 5e-4}
    fp = training_fingerprint(TrainConfig(**base))
    same = [{"eval_limit": 50}, {"eval_every": 2}, {"max_steps": 30}, {"stop_on_collapse": True},
            {"patience": 3}, {"threads": 2}, {"output_dir": "x"}]
    assert all(training_fingerprint(TrainConfig(**base, **s)) == fp for s in same)
    quiet = [training_fingerprint(TrainConfig(**base, train_noise=0.0, train_noise_modes=m))
             for m in ("drop_gold", "random")]
    assert quiet[0] == quiet[1] != fp  # noise 0 under any mode is one run
    differ = [{"seed": 2}, {"epsilon_high": 0.28}, {"entropy_coef": 0.01}, {"loss_type": "dr_grpo"},
              {"drop_zero_std_groups": True}, {"on_collapse": "rollback"}, {"lr_scheduler": "linear"},
              {"train_noise_schedule": "curriculum"}, {"reward_weights": "retry=0"}]
    fps = {training_fingerprint(TrainConfig(**{**base, **d})) for d in differ}
    assert len(fps) == len(differ) and fp not in fps
    # with a schedule that reads max_steps, or a rollback (decided by the evals), those options count
    lin = dict(base, lr_scheduler="linear")
    assert training_fingerprint(TrainConfig(**lin, max_steps=30)) != training_fingerprint(TrainConfig(**lin))
    rb = dict(base, on_collapse="rollback")
    assert training_fingerprint(TrainConfig(**rb, eval_every=2)) != training_fingerprint(TrainConfig(**rb))
    # the same recipe spelled through the preset or explicit weights is one run
    r = resolve(TrainConfig(**base))
    explicit = TrainConfig(**base, reward_weights=r.weights.model_dump())
    assert training_fingerprint(explicit) == fp


# ----------------------------------------------------------------------------- TRL takes the options
@pytest.mark.integration
@pytest.mark.parametrize("loss", LOSS_TYPES)
def test_grpo_config_carries_every_remedy(loss, tmp_path):
    from harness.train.build import grpo_config

    cfg = TrainConfig(task="apollo3_micro", loss_type=loss, epsilon_high=0.28, entropy_coef=0.01,
                      importance_sampling_level="sequence" if loss in ("luspo", "vespo") else "token",
                      scale_rewards="none", mask_truncated_completions=True, sync_ref_model=True,
                      ref_model_mixup_alpha=0.9, ref_model_sync_steps=4, beta=0.01)
    g = grpo_config(cfg, resolve(cfg), tmp_path)
    assert (g.loss_type, g.epsilon_high, g.entropy_coef, g.scale_rewards, g.mask_truncated_completions) == (
        loss, 0.28, 0.01, "none", True)
    assert (g.sync_ref_model, g.ref_model_mixup_alpha, g.ref_model_sync_steps, g.beta) == (True, 0.9, 4, 0.01)
    assert g.importance_sampling_level == cfg.importance_sampling_level
    plain = grpo_config(TrainConfig(task="apollo3_micro"), resolve(TrainConfig(task="apollo3_micro")), tmp_path)
    assert plain.epsilon_high is None and plain.epsilon == 0.2  # TRL then clips at epsilon on both sides
    assert plain.entropy_coef == 0.0 and not plain.sync_ref_model and plain.scale_rewards == "group"


# ----------------------------------------------------------------------------- runs (tiny model, CPU)
FAST = {"model": "tiny", "warm_start": 40, "threads": 1, "eval_limit": 4, "max_new_tokens": 24, "max_turns": 3,
            "num_generations": 4, "prompts_per_step": 2, "report": False, "eval_every": 2, "beta": 0.01}


def _rows(out) -> list[dict]:
    with open(out / "curve.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def warm_tiny(data, task):
    import torch

    from harness.models.resolve import resolve_model_path
    from harness.train.warmstart import cached_warm_start

    torch.set_num_threads(1)
    return cached_warm_start(resolve_model_path("tiny", data.corpus), task, data, steps=40)


@pytest.mark.integration
def test_remedies_train_together(data, warm_tiny, tmp_path):
    """Every remedy at once on a 2-step run: TRL accepts them, the filter and the curriculum log per step."""
    from harness.train.runner import TrainRun

    out = tmp_path / "run"
    cfg = TrainConfig.build(**FAST, max_steps=2, output_dir=str(out), loss_type="dr_grpo", epsilon_high=0.28,
                            entropy_coef=0.01, scale_rewards="none", mask_truncated_completions=True,
                            sync_ref_model=True, ref_model_sync_steps=1, drop_zero_std_groups=True,
                            train_noise_schedule="curriculum", train_noise=0.6, train_noise_start=0.0)
    res = TrainRun(cfg).run()
    assert res.status == "complete"
    rows = {int(r["step"]): r for r in _rows(out)}
    assert [round(float(rows[s]["train_noise_level"]), 4) for s in (1, 2)] == [
        round(curriculum_level(s, 2, 0.0, 0.6), 4) for s in (1, 2)]
    assert all(0.0 <= float(rows[s]["frac_groups_dropped"]) <= 1.0 for s in (1, 2))
    assert (out / "checkpoints" / "checkpoint-2" / "ref_model.pt").is_file()  # a synced reference is checkpointed




#: A collapse confirmed at 6 (two low evals after the peak at 2), a recovery, another collapse confirmed at 12.
ROLLBACK_SCRIPT = {0: 0.5, 2: 0.6, 4: 0.05, 6: 0.02, 8: 0.55, 10: 0.05, 12: 0.02, 14: 0.5}


@pytest.mark.integration
def test_rollback_restores_the_peak_and_resumes_to_the_same_decisions(data, warm_tiny, tmp_path):
    import torch
    from safetensors.torch import load_file

    def cfg(out, **extra):
        return TrainConfig.build(**FAST, max_steps=14, output_dir=str(out), on_collapse="rollback",
                                 rollback_lr_factor=0.5, max_rollbacks=1, learning_rate=1e-3, **extra)

    # interrupted after the rollback: the checkpoint saved at the rollback holds the peak's weights, and the
    # reference model (checkpointed with it) was reset to them
    part = tmp_path / "part"
    first = scripted_run(ROLLBACK_SCRIPT)(cfg(part, stop_after=8)).run()
    assert first.status == "partial" and first.stopping.interventions[0]["to_step"] == 2
    peak = torch.load(part / "rollback" / "step-000002" / "model.pt", weights_only=True)
    at6 = load_file(str(part / "checkpoints" / "checkpoint-6" / "model.safetensors"))
    assert all(torch.equal(at6[k], peak[k]) for k in at6)
    ref = torch.load(part / "checkpoints" / "checkpoint-6" / "ref_model.pt", weights_only=True)
    assert all(torch.equal(ref[k], peak[k]) for k in at6)

    # the collapse confirmed at 6 -> back to step 2 at half the learning rate; the one at 12: no rollback left, stop
    full = tmp_path / "full"
    res = scripted_run(ROLLBACK_SCRIPT)(cfg(full)).run()
    assert res.status == "stopped_collapse" and res.stopping.stop_step == 12
    assert res.stopping.on_collapse == "rollback"
    assert res.stopping.interventions == [{"step": 6, "action": "rollback", "to_step": 2, "lr_scale": 0.5}]
    rows = {int(r["step"]): r for r in _rows(full)}
    assert rows[6]["intervention"] == "rollback" and rows[6]["rollback_to"] == "2" and float(rows[6]["lr_scale"]) == 0.5
    # a row's learning rate is the one its step's update used (the trainer reads it before on_step_end, where
    # the rollback happens): the halved rate takes effect from step 7
    assert [float(rows[s]["learning_rate"]) for s in (5, 6, 7)] == [1e-3, 1e-3, 5e-4]

    # resumed: the same decisions and the same curve
    again = scripted_run(ROLLBACK_SCRIPT)(cfg(part, resume=True)).run()
    assert again.status == "stopped_collapse" and again.stopping.stop_step == 12
    assert again.stopping.interventions == res.stopping.interventions
    keys = ("step", "accuracy", "reward", "loss", "learning_rate", "intervention", "rollback_to")
    assert [[r.get(k) for k in keys] for r in _rows(part)] == [[r.get(k) for k in keys] for r in _rows(full)]
    record = json.loads((part / "results.json").read_text())
    assert record["stopping"]["interventions"][0]["to_step"] == 2


def test_an_ablation_names_its_arms():
    """Arms that differ in more than one option are named under arms: and picked by a categorical 'arm'."""
    from harness.core.config import load_task
    from harness.sweep.ablation import Ablation, check_values, load_ablation, trial_values

    ab = load_ablation("study_b_remedies")
    assert ab.grid_size() == 28
    values = trial_values(ab, {"arm": "rollback", "seed": 3})
    assert (values["on_collapse"], values["max_rollbacks"], values["seed"]) == ("rollback", 2, 3)
    assert "arm" not in values
    assert trial_values(ab, {"arm": "lower_lr", "seed": 0})["learning_rate"] == 5e-4  # the arm over base
    assert "epsilon_high" not in trial_values(ab, {"arm": "none", "seed": 0})
    with pytest.raises(ValueError, match="not among arms"):
        Ablation(name="x", arms={"a": {}}, search_space={"arm": {"type": "categorical", "choices": ["a", "b"]}})
    bad = Ablation(name="x", task="apollo3_micro", arms={"a": {"epsilon_hi": 0.28}},
                   search_space={"arm": {"type": "categorical", "choices": ["a"]}})
    assert any("arms.a.epsilon_hi" in p and "epsilon_high" in p for p in check_values(bad, load_task("apollo3_micro")))


def test_an_inert_remedy_is_said_to_be_inert(caplog):
    """Clipping acts through the importance ratio, which one optimiser step per batch leaves at 1 (Study B's
    clip_higher arm reproduced the control bit for bit): the run says so instead of silently changing nothing."""
    import logging

    from harness.train.build import stability_options

    with caplog.at_level(logging.WARNING, logger="harness.train.build"):
        stability_options(TrainConfig(task="apollo3_micro"))
        assert not caplog.records
        stability_options(TrainConfig(task="apollo3_micro", epsilon_high=0.28))
    assert len(caplog.records) == 1 and "change nothing" in caplog.records[0].getMessage()
