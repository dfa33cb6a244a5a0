from pathlib import Path

import pytest
import yaml

from harness.core.config import NoiseConfig, RewardWeights, load_task, parse_weight_overrides
from harness.core.errors import ConfigError

pytestmark = pytest.mark.tier("unit")

REPO = Path(__file__).resolve().parent.parent


def test_shipped_tasks_validate():
    for path in sorted((REPO / "tasks").glob("*/task.yaml")):
        t = load_task(path)
        assert t.name == path.parent.name
        for name, preset in t.presets.items():
            assert preset.reward_weights.active(), f"preset {name} has no active reward"


def test_apollo3_defaults(task):
    assert task.retrieval.k == 3 and task.protocol.max_turns == 20
    assert task.rewards.weights.model_dump() == {"correctness": 4.0, "format": 2.0, "retry": 1.0, "em_chunk": 1.0,
                                                 "retry_after_miss": 0.0, "search_strategy": 1.0,
                                                 "search_diversity": 1.0}
    assert task.presets["baseline"].reward_weights.active().keys() == {"correctness", "format", "em_chunk"}
    assert len(task.splits.paper.expected_test_lines) == 32


def _write(tmp_path, mutate):
    raw = yaml.safe_load((REPO / "tasks/apollo3/task.yaml").read_text())
    mutate(raw)
    p = tmp_path / "task.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_unknown_key_is_named_with_file(tmp_path):
    p = _write(tmp_path, lambda r: r["retrieval"].update(top_kk=5))
    with pytest.raises(ConfigError) as e:
        load_task(p)
    assert "retrieval.top_kk" in str(e.value) and str(p) in str(e.value)


def test_bad_values_rejected(tmp_path):
    p = _write(tmp_path, lambda r: r["noise"].update(level=1.5, modes=["drop_gold", "blur"]))
    with pytest.raises(ConfigError) as e:
        load_task(p)
    assert "noise.level" in str(e.value) and "blur" in str(e.value) and "paraphrase" in str(e.value)


def test_unknown_task_lists_available():
    with pytest.raises(ConfigError, match="apollo3"):
        load_task("no-such-task")


def test_not_yaml(tmp_path):
    p = tmp_path / "task.yaml"
    p.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_task(p)


def test_weight_overrides():
    from harness.scoring.rewards import check_weights

    w = parse_weight_overrides("retry=0, format=1.5", RewardWeights({"correctness": 4, "format": 2, "retry": 1}))
    assert (w["correctness"], w["format"], w["retry"]) == (4.0, 1.5, 0.0)
    with pytest.raises(ConfigError, match="unknown reward 'retri'"):  # names: checked against the registry
        check_weights(parse_weight_overrides("retri=0", RewardWeights({})))
    with pytest.raises(ConfigError, match="not a number"):
        parse_weight_overrides("retry=x", RewardWeights({}))


def test_noise_modes_from_string():
    assert NoiseConfig(level=0.3, modes="drop_gold,shuffle").modes == ("drop_gold", "shuffle")


def test_unknown_judge_rule_rejected(tmp_path):
    p = _write(tmp_path, lambda r: r["judge"].update(rule="exactmatch"))
    with pytest.raises(ConfigError, match="unknown judge rule 'exactmatch'.*exact_match"):
        load_task(p)
