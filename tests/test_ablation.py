from pathlib import Path

import pytest
import yaml

from harness.cli.validate import validate_file
from harness.core.errors import ConfigError
from harness.sweep.ablation import load_ablation
from harness.sweep.runner import train_command

pytestmark = pytest.mark.unit

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
    (lambda r: r.update(objective="best"), "objective"),
    (lambda r: r.update(preset="nope"), "preset 'nope'"),
    (lambda r: r["search_space"].update(learning_rate={"type": "float", "low": 0.0, "high": 1e-3, "log": True}), "log scale"),
])
def test_invalid_ablations_name_file_and_key(tmp_path, mutate, needle):
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as e:
        load_ablation(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_train_command_layers_base_overrides_params(tmp_path):
    ab = load_ablation(REPO / "ablations/retry_vs_baseline.yaml")
    cmd = train_command(ab, {"reward.retry": 0.0, "train_noise": 0.3, "seed": 2}, {"max_steps": "2", "model": "tiny"},
                        tmp_path / "t")
    s = " ".join(cmd)
    assert "--preset rezero" in s and "--max-steps 2" in s and "--eval-every 25" in s and "--model tiny" in s
    assert "--reward-weights retry=0" in s and "--train-noise 0.3" in s and "--seed 2" in s
    assert cmd[-3:] == ["--output-dir", str(tmp_path / "t"), "--no-report"]
