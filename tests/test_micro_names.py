"""``micro:KEY=VALUE`` model names: a micro build with a non-default spec, refused early when malformed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.core.errors import ConfigError
from harness.models.micro import BuildSpec, default_path
from harness.models.resolve import is_micro_scale, micro_spec
from harness.policies import check_model_name

pytestmark = pytest.mark.tier("unit")

REPO = Path(__file__).resolve().parents[1]


def test_names_map_to_specs_and_cache_folders():
    assert micro_spec("micro") == BuildSpec() and micro_spec("tiny") is None and micro_spec("microscope") is None
    rare = micro_spec("micro:p_retry=0.03")
    assert rare == BuildSpec(p_retry=0.03) and micro_spec("micro: p_retry = 0.03 ") == rare
    assert micro_spec("micro:p_retry=0.03,steps=8") == BuildSpec(p_retry=0.03, steps=8)
    assert (default_path("x", rare) != default_path("x", BuildSpec())
            == default_path("x", micro_spec("micro:p_retry=0.3")))
    assert is_micro_scale("micro:p_retry=0.03") and not is_micro_scale("microsoft/phi-2")


@pytest.mark.parametrize("name, message", [
    ("micro:", "no build parameter"),
    ("micro:p_rety=0.03", "unknown build parameter 'p_rety'"),
    ("micro:p_retry=abc", "needs a finite float"),
    ("micro:p_retry", "needs a finite float"),
    ("micro:learning_rate=nan", "needs a finite float"),
    ("micro:p_retry=0.1,p_retry=0.2", "given twice"),
    ("micro:p_retry=1.5", r"p_retry must be in \[0, 1\]"),
    ("micro:steps=-3", "steps must be > 0"),
    ("micro:steps=2.5", "needs a finite int"),
    ("micro:num_attention_heads=3", "multiple of num_attention_heads"),
])
def test_malformed_names_are_refused_with_one_line(name, message):
    with pytest.raises(ConfigError, match=message) as e:
        micro_spec(name)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=message):
        check_model_name(name, "hf")  # what harness run / harness train check before loading anything


def test_an_ablation_naming_a_bad_micro_build_is_refused_before_any_trial(tmp_path):
    from harness.sweep.ablation import load_ablation

    ab = yaml.safe_load((REPO / "ablations" / "micro_exploration.yaml").read_text())
    ab["search_space"]["model"]["choices"] = ["micro", "micro:p_rety=0.03"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(ab))
    with pytest.raises(ConfigError, match="unknown build parameter 'p_rety'"):
        load_ablation(path)
