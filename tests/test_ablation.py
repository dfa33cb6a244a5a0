from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli.app import app
from harness.cli.validate import validate_file
from harness.core.errors import ConfigError
from harness.sweep.ablation import Ablation, ParamSpec, load_ablation, trial_values
from harness.sweep.trial import trial_config
from harness.train.config import TrainConfig, resolve

pytestmark = pytest.mark.tier("unit")

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "ablations").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_ablations_validate(path):
    ab = load_ablation(path)
    assert validate_file(path) == "ablation"
    assert ab.search_space


def test_retry_vs_baseline_is_the_paper_grid():
    ab = load_ablation(REPO / "ablations/retry_vs_baseline.yaml")
    assert ab.sampler.name == "grid" and ab.grid_size() == 2 * 3 * 3
    assert ab.search_space["reward.retry"].choices == [0.0, 1.0]


def _write(tmp_path, mutate):
    raw = yaml.safe_load((REPO / "ablations/retry_vs_baseline.yaml").read_text())
    mutate(raw)
    p = tmp_path / "ab.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.update(samplr={"name": "tpe"}), "samplr"),
    (lambda r: r["search_space"].update(train_noise={"type": "float", "low": 0.9, "high": 0.1}), "impossible range"),
    (lambda r: r["search_space"].update({"reward.retri": {"type": "categorical", "choices": [0, 1]}}), "reward.retri"),
    (lambda r: r["base"].update(max_stepz=3), "max_stepz"),
    (lambda r: r["base"].update(max_stepz=3), "did you mean max_steps"),
    (lambda r: r.update(objective="best"), "objective"),
    (lambda r: r.update(preset="nope"), "preset 'nope'"),
    (lambda r: r["search_space"].update(learning_rate={"type": "float", "low": 0.0, "high": 1e-3, "log": True}),
     "log scale"),
])
def test_invalid_ablations_name_file_and_key(tmp_path, mutate, needle):
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as e:
        load_ablation(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_trial_config_layers_base_overrides_params(tmp_path):
    ab = load_ablation(REPO / "ablations/retry_vs_baseline.yaml")
    cfg = trial_config(ab, {"reward.retry": 0.0, "train_noise": 0.3, "seed": 2}, {"max_steps": "2", "model": "tiny"},
                       tmp_path / "t")
    # typed by TrainConfig (the override "2" is the int 2); only what the ablation and overrides set is written
    assert cfg == {"task": "apollo3", "preset": "rezero", "max_steps": 2, "eval_every": 25, "model": "tiny",
                   "train_noise": 0.3, "seed": 2, "reward_weights": {"retry": 0.0}, "output_dir": str(tmp_path / "t"),
                   "report": False, "stop_on_collapse": True}


def test_trials_stop_on_the_online_detector_of_harness_train(tmp_path):
    """collapse_stop becomes the trial's own --stop-on-collapse / --patience; base: or the space wins."""
    ab = Ablation(name="x", task="apollo3_micro", base={"model": "micro"},
                  collapse_stop={"enabled": True, "patience": 3},
                  search_space={"seed": {"type": "categorical", "choices": [0, 1]}})
    cfg = trial_config(ab, {"seed": 1}, {}, tmp_path / "t")
    assert cfg["stop_on_collapse"] is True and cfg["patience"] == 3
    off = Ablation(name="x", task="apollo3_micro", base={"model": "micro", "patience": 5},
                   collapse_stop={"enabled": False}, search_space={"seed": {"type": "categorical", "choices": [0]}})
    cfg = trial_config(off, {"seed": 0}, {}, tmp_path / "u")
    assert "stop_on_collapse" not in cfg and cfg["patience"] == 5


def test_reward_entries_of_every_layer_join_reward_weights_later_wins():
    ab = Ablation(name="x", base={"reward.format": 2, "reward_weights": "retry=0.5"},
                  search_space={"reward.retry": ParamSpec(type="categorical", choices=[0.0, 1.0])})
    v = trial_values(ab, {"reward.retry": 1.0}, {"reward.em_chunk": "0"})
    assert v["reward_weights"] == {"em_chunk": 0.0, "format": 2.0, "retry": 1.0}
    w = resolve(TrainConfig(**v)).weights
    assert (w["format"], w["retry"], w["em_chunk"]) == (2.0, 1.0, 0.0)


def test_equal_weightings_make_equal_trial_configs_however_they_are_written(tmp_path):
    """Weights are a mapping everywhere: the duplicate-trial fingerprint cannot tell 'retry=0,retry=1.0'
    from 'retry=1' (it could when weights were concatenated text)."""
    a = Ablation(name="x", base={"reward_weights": "retry=0"},
                 search_space={"reward.retry": ParamSpec(type="categorical", choices=[0.0, 1.0])})
    b = Ablation(name="x", base={"reward_weights": {"retry": 1}},
                 search_space={"seed": ParamSpec(type="categorical", choices=[0])})
    assert trial_config(a, {"reward.retry": 1.0}, {}, tmp_path / "t") == trial_config(b, {}, {}, tmp_path / "t")
    assert TrainConfig(reward_weights="retry=1, format=2") == TrainConfig(reward_weights={"format": 2, "retry": 1.0})


# ----------------------------------------------------------------------------- values, checked before any trial
def _cat(*choices):
    return {"type": "categorical", "choices": list(choices)}


def _tpe(r, **space):
    """Switch the (grid) ablation to TPE, whose ranges need no step, and add ``space``."""
    r["sampler"] = {"name": "tpe"}
    r["search_space"].update(space)


@pytest.mark.parametrize("mutate,needle", [
    # a value TrainConfig refuses, wherever it is: a choice list, a range, base
    (lambda r: r["search_space"].update(train_noise=_cat(0.0, 1.5)),
     "search_space.train_noise.choices[1] = 1.5: train_noise: Input should be less than or equal to 1"),
    (lambda r: _tpe(r, train_noise={"type": "float", "low": 0.0, "high": 1.5}),
     "search_space.train_noise.high = 1.5"),
    (lambda r: r["base"].update(train_noise=1.5), "base.train_noise: Input should be less than or equal to 1"),
    (lambda r: r["base"].update(max_steps="sixty"), "base.max_steps: Input should be a valid integer"),
    (lambda r: r["search_space"].update(max_steps=_cat(60, "sixty")), "search_space.max_steps.choices[1] = 'sixty'"),
    # a float range over an integer option yields values it refuses
    (lambda r: _tpe(r, max_steps={"type": "float", "low": 10, "high": 100}),
     "use type: int for an integer option"),
    (lambda r: _tpe(r, eval_every={"type": "int", "low": 0, "high": 5}),
     "search_space.eval_every.low = 0: eval_every: Input should be greater than or equal to 1"),
    # what resolve() refuses against the task: presets, noise modes; cross-field checks of TrainConfig
    (lambda r: r["search_space"].update(preset=_cat("rezero", "nope")), "unknown preset 'nope'"),
    (lambda r: r["search_space"].update(train_noise_mode=_cat("drop_gold", "sideways")), "sideways"),
    (lambda r: r["base"].update(stop_after=400), "stop_after (400) is past max_steps (300)"),
    (lambda r: r["base"].update(lr_scheduler="zigzag"), "unknown lr scheduler"),
    # reward weights: registry names, numbers, finite, >= 0
    (lambda r: r["search_space"].update({"reward.retry": _cat(0.0, "x")}), "must be a number"),
    (lambda r: r["search_space"].update({"reward.retry": _cat(0.0, float("inf"))}), "must be finite"),
    (lambda r: r["search_space"].update({"reward.retry": _cat(0.0, float("nan"))}), "must be finite"),
    (lambda r: r["search_space"].update({"reward.retry": _cat(-1.0, 1.0)}), "must be >= 0"),
    (lambda r: _tpe(r, **{"reward.format": {"type": "float", "low": -1.0, "high": 1.0}}),
     "low = -1.0: a reward weight must be >= 0"),
    (lambda r: r["base"].update({"reward.format": float("inf")}),
     "base.reward.format = inf: a reward weight must be finite"),
    (lambda r: r["base"].update(reward_weights="retry=nan"), "reward weight retry=nan"),
    (lambda r: r["search_space"].update({"reward.retri": _cat(0.0)}), "did you mean reward.retry"),
    # options the sweep decides
    (lambda r: r["base"].update(output_dir="x"), "each trial gets its own run directory"),
    (lambda r: r["base"].update(task="apollo3_micro"), "top-level 'task:'"),
    (lambda r: r.update(allow_weights=["negativ"]), "allow_weights"),
])
def test_values_a_trial_would_refuse_are_refused_before_any_trial(tmp_path, mutate, needle):
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as e:
        load_ablation(p)
    assert needle in str(e.value) and str(p) in str(e.value), str(e.value)
    res = CliRunner().invoke(app, ["validate", str(p)])
    assert res.exit_code == 1 and needle in res.output


def test_allow_weights_lifts_the_ablation_guard_only(tmp_path):
    """The opt-in only lifts the ablation's own check: training still refuses what it cannot use."""
    p = _write(tmp_path, lambda r: r.update(allow_weights=["non_finite"]) or
               r["search_space"].update({"reward.retry": _cat(0.0, float("inf"))}))
    with pytest.raises(ConfigError, match=r"choices\[1\] = inf: reward weight retry=inf is not a finite number"):
        load_ablation(p)
    p = _write(tmp_path, lambda r: r.update(allow_weights=["negative"]) or
               r["search_space"].update({"reward.retry": _cat(0.0, -1.0)}))
    with pytest.raises(ConfigError, match=r"choices\[1\] = -1.0: reward weights must be >= 0"):
        load_ablation(p)


def test_sweep_overrides_are_checked_with_the_ablation():
    path = REPO / "ablations/retry_vs_baseline.yaml"
    assert load_ablation(path, {"max_steps": "2", "model": "tiny"}).name == "retry_vs_baseline"
    with pytest.raises(ConfigError, match="override max_steps: Input should be a valid integer"):
        load_ablation(path, {"max_steps": "two"})
    with pytest.raises(ConfigError, match="override max_stepz: unknown training option"):
        load_ablation(path, {"max_stepz": "2"})
    with pytest.raises(ConfigError, match="must be finite"):
        load_ablation(path, {"reward.format": "inf"})


def test_every_train_option_is_a_valid_ablation_key():
    """The schema is TrainConfig itself: a new TrainConfig field is an ablation key with nothing else to edit."""
    from harness.sweep.ablation import SWEEP_SETS, _name_problem

    for name in TrainConfig.model_fields:
        assert (_name_problem(name) is None) == (name not in SWEEP_SETS), name
    from harness.scoring.rewards import REWARDS

    assert all(_name_problem(f"reward.{r}") is None for r in REWARDS)


def test_probes_cover_choices_ends_and_inside():
    assert ParamSpec(type="int", low=1, high=9, step=2).probes() == [("low", 1), ("high", 9)]
    assert ParamSpec(type="float", low=0.0, high=0.8, step=0.2).probes() == [("low", 0.0), ("high", 0.8),
                                                                             ("inside", 0.2)]
    with pytest.raises(ValueError, match="whole-number"):
        ParamSpec(type="int", low=0.5, high=3)
    with pytest.raises(ValueError, match="finite"):
        ParamSpec(type="float", low=0.0, high=float("inf"))


def test_gpu_scale_ablations_warn_when_run_with_a_micro_scale_model():
    from harness.sweep.ablation import load_ablation
    from harness.sweep.runner import warn_scale

    root = Path(__file__).resolve().parents[1] / "ablations"
    ab = load_ablation(str(root / "retry_vs_baseline.yaml"))
    msg = warn_scale(ab, {"model": "tiny"})
    assert msg and "GPU-scale" in msg and "ablations/micro_*.yaml" in msg and warn_scale(ab) == msg  # tiny: default
    assert warn_scale(ab, {"model": "Qwen/Qwen2.5-3B-Instruct"}) is None
    for name in ("micro_exploration", "micro_reward_weights", "micro_noise_levels", "micro_lr_collapse"):
        assert warn_scale(load_ablation(str(root / f"{name}.yaml"))) is None
    for name in ("retry_vs_baseline", "reward_weights", "noise_levels"):
        assert "GPU-scale" in (root / f"{name}.yaml").read_text().split("\n", 1)[0]
