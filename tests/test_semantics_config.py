"""Reward semantics and the protocol as recorded, overridable, sweepable configuration."""

from __future__ import annotations

import pytest
import yaml

from harness.core.config import load_task
from harness.core.errors import ConfigError

pytestmark = pytest.mark.tier("unit")


def test_shipped_tasks_choose_rezero_and_whole_messages_for_training():
    for name in ("apollo3", "apollo3_micro"):
        t = load_task(name)
        assert t.rewards.semantics == "rezero" and t.protocol.stop_after_action is True
        for preset in ("rezero", "baseline"):
            p = t.presets[preset]
            assert p.reward_semantics == "rezero" and p.stop_after_action is False


def test_eval_run_resolves_semantics_and_protocol():
    from harness.evaluation.run import EvalRun, RunConfig

    r = EvalRun(RunConfig(model="one-search", output_dir="/nonexistent/x"))
    assert (r.semantics, r.stop_after_action) == ("rezero", True)
    r = EvalRun(RunConfig(model="one-search", reward_semantics="strict", stop_after_action=False,
                          output_dir="/nonexistent/x"))
    assert (r.semantics, r.stop_after_action) == ("strict", False)
    with pytest.raises(ValueError):
        RunConfig(reward_semantics="loose")


@pytest.mark.parametrize("spec, message", [("retry=nan", "not a finite number"), ("retry=inf", "not a finite number"),
                                           ("bogus=1", "unknown reward 'bogus'")])
def test_eval_run_refuses_bad_weights_with_one_line(spec, message):
    from harness.evaluation.run import EvalRun, RunConfig

    with pytest.raises(ConfigError, match=message) as e:
        EvalRun(RunConfig(model="one-search", reward_weights=spec, output_dir="/nonexistent/x"))
    assert "\n" not in str(e.value)


def test_task_semantics_values_are_validated(tmp_path):
    raw = yaml.safe_load(open(load_task("apollo3").source).read())
    raw["presets"]["rezero"]["reward_semantics"] = "loose"
    p = tmp_path / "task.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="presets.rezero.reward_semantics"):
        load_task(p)


def test_semantics_and_protocol_are_sweepable(tmp_path):
    from harness.cli.validate import validate_file

    ab = tmp_path / "ab.yaml"
    ab.write_text(yaml.safe_dump({
        "name": "semantics", "task": "apollo3", "preset": "rezero", "base": {"max_steps": 2},
        "search_space": {"reward_semantics": {"type": "categorical", "choices": ["rezero", "strict"]},
                         "stop_after_action": {"type": "categorical", "choices": [True, False]}},
        "sampler": {"name": "grid"}}))
    assert validate_file(ab) == "ablation"
    from harness.sweep.ablation import load_ablation
    from harness.sweep.trial import trial_config

    cfg = trial_config(load_ablation(ab), {"reward_semantics": "strict", "stop_after_action": False}, {}, tmp_path)
    assert cfg["reward_semantics"] == "strict" and cfg["stop_after_action"] is False
