"""Task files that include a base file, the keys a task declares (scale, reference policies), and names
that become paths (issues 21 and 27)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import load_task, merge_mappings, read_task_file
from harness.core.errors import ConfigError

pytestmark = pytest.mark.tier("unit")

REPO = Path(__file__).resolve().parent.parent
APOLLO3 = REPO / "tasks" / "apollo3" / "task.yaml"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _child(tmp_path: Path, body: str, name: str = "child") -> Path:
    return _write(tmp_path / name / "task.yaml", f"include: {APOLLO3}\nname: {name}\n{body}")


# ----------------------------------------------------------------------------- include


def test_the_including_files_keys_override_the_bases():
    merged = merge_mappings({"name": "base", "version": 1, "description": "b"}, {"name": "child", "version": 2})
    assert merged == {"name": "child", "version": 2, "description": "b"}


def test_nested_mappings_merge_key_by_key_at_any_depth(tmp_path):
    task = load_task(_child(tmp_path, "protocol: {max_turns: 4}\npresets: {rezero: {train_noise: {level: 0.5}}}\n"))
    base = load_task(APOLLO3)
    assert task.protocol.max_turns == 4 and task.protocol.think_tag == "think"            # one key replaced
    assert task.protocol.max_new_tokens == base.protocol.max_new_tokens
    rezero = task.presets["rezero"]
    assert rezero.train_noise.level == 0.5 and rezero.train_noise.modes == ("drop_gold",)  # two levels down
    assert rezero.reward_weights == base.presets["rezero"].reward_weights and rezero.stop_after_action is False
    assert set(task.presets) == set(base.presets)                                        # the others inherited


def test_lists_and_values_replace_whole(tmp_path):
    task = load_task(_child(tmp_path, "noise: {modes: [shuffle]}\nreference_policies: [one-search]\n"
                                      "prompt: {user: 'Q: {question}'}\n"))
    assert task.noise.modes == ("shuffle",) and task.reference_policies == ("one-search",)
    assert task.prompt.user == "Q: {question}" and task.prompt.system == load_task(APOLLO3).prompt.system


def test_null_removes_an_inherited_key(tmp_path):
    task = load_task(_child(tmp_path, "data: {files: {report: ~}}\nsplits: {paper: {expected_test_lines: ~}}\n"
                                      "presets: {retry_after_miss: ~}\n"))
    assert task.data.files.report is None and task.splits.paper.expected_test_lines is None
    assert set(task.presets) == {"rezero", "baseline", "rezero_paper"}
    assert task.data.files.chunks == load_task(APOLLO3).data.files.chunks


def test_includes_merge_in_order_then_the_file(tmp_path):
    _write(tmp_path / "a.yaml", "retrieval: {k: 5, bm25_stopwords: none}\njudge: {rule: f1}\n")
    _write(tmp_path / "b.yaml", "retrieval: {k: 7}\n")
    path = _write(tmp_path / "t" / "task.yaml", f"include: [{APOLLO3}, ../a.yaml, ../b.yaml]\nname: t\n"
                                                 "judge: {rule: contains}\n")
    task = load_task(path)
    assert (task.retrieval.k, task.retrieval.bm25_stopwords, task.judge.rule) == (7, "none", "contains")


def test_a_task_name_includes_that_task_and_the_micro_task_includes_apollo3():
    raw, _ = read_task_file(REPO / "tasks" / "apollo3_micro" / "task.yaml")
    micro, base = load_task("apollo3_micro"), load_task("apollo3")
    assert raw["prompt"]["information"] == base.prompt.information and micro.rewards == base.rewards
    assert micro.data.files.chunks == base.data.files.chunks and micro.retrieval.k == 2
    # the base file's own lines are not repeated: the micro file states only what differs
    text = (REPO / "tasks" / "apollo3_micro" / "task.yaml").read_text()
    assert "sha256" not in text and "url_pattern" not in text and "weights:" not in text


def test_include_by_task_name(tmp_path):
    task = load_task(_write(tmp_path / "t.yaml", "include: apollo3_micro\nname: variant\nnoise: {level: 0.2}\n"))
    assert task.name == "variant" and task.noise.level == 0.2 and task.retrieval.k == 2
    assert task.hooks.environment == "hooks:MicroEnvironment"


def test_an_include_cycle_is_an_error_naming_the_files(tmp_path):
    a = tmp_path / "a.yaml"
    b = _write(tmp_path / "b.yaml", "include: a.yaml\n")
    _write(a, "include: b.yaml\nname: a\n")
    with pytest.raises(ConfigError, match="include cycle") as e:
        load_task(a)
    assert str(e.value) == f"include cycle: {a} -> {b} -> {a}"
    _write(tmp_path / "self.yaml", "include: self.yaml\n")
    with pytest.raises(ConfigError, match=r"include cycle: .*self.yaml -> .*self.yaml"):
        load_task(tmp_path / "self.yaml")


def test_a_missing_include_names_both_files(tmp_path):
    path = _write(tmp_path / "t.yaml", "include: nowhere/base.yaml\nname: t\n")
    with pytest.raises(ConfigError, match=r"t.yaml: include 'nowhere/base.yaml' names no file"):
        load_task(path)
    with pytest.raises(ConfigError, match="names no file"):
        load_task(_write(tmp_path / "u.yaml", "include: no_such_task\nname: u\n"))


def test_validate_resolves_includes(tmp_path, monkeypatch):
    """A task file that only includes and overrides (no data or prompt of its own) is validated as a task."""
    from harness.cli.validate import validate_file

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "no-data"))   # the data checks: test_hooks, test_data
    path = _child(tmp_path, "splits: {paper: {expected_test_lines: ~}}\n")
    assert validate_file(path) == f"task; data checks skipped: chunks.csv, questions.jsonl, paragraphs_noise.csv, " \
                                  f"mission_report.md not in {tmp_path / 'no-data'}"
    bad = _child(tmp_path, "protocol: {max_turns: 0}\n", name="bad")
    with pytest.raises(ConfigError, match="protocol.max_turns"):
        validate_file(bad)


def test_folders_a_file_names_are_relative_to_that_file(tmp_path):
    base = _write(tmp_path / "base" / "task.yaml", yaml.safe_dump({
        **yaml.safe_load(APOLLO3.read_text()), "name": "base", "data": {"dir": "files", "files": {
            "chunks": {"name": "chunks.csv"}, "questions": {"name": "questions.jsonl"}}}}))
    child = _write(tmp_path / "elsewhere" / "deep" / "task.yaml", "include: ../../base/task.yaml\nname: c\n")
    assert load_task(child).data.dir == str(base.parent / "files")


def test_loader_keys_cannot_be_set_by_a_file(tmp_path):
    with pytest.raises(ConfigError, match="'data.loaded' is set by the loader"):
        load_task(_child(tmp_path, "data: {loaded: {chunks: {}}}\n"))
    with pytest.raises(ConfigError, match="'source' is set by the loader"):
        load_task(_child(tmp_path, "source: /etc/passwd\n", name="s"))


# ----------------------------------------------------------------------------- what a task declares


def test_reference_policies_come_from_the_task(tmp_path):
    """Issue 21: TASK_POLICIES in harness/evaluation/run.py hard-coded the micro policy for apollo3_micro."""
    from harness.core.config import DEFAULT_REFERENCE_POLICIES, other_task_policies
    from harness.evaluation.run import EvalRun, RunConfig

    assert load_task("apollo3").reference_policies == DEFAULT_REFERENCE_POLICIES
    run = EvalRun(RunConfig(task=str(_child(tmp_path, "reference_policies: [one-search, micro]\n")),
                            output_dir="/nonexistent/x"))
    assert run.policies == [("scripted", "one-search"), ("hf", "micro")] and run.micro_scale
    assert other_task_policies(load_task("apollo3")) == {"apollo3_micro": ("micro",)}
    assert other_task_policies(load_task("apollo3_micro")) == {}
    with pytest.raises(ConfigError, match="reference_policies"):
        load_task(_child(tmp_path, "reference_policies: []\n", name="none"))


def test_the_scale_flag_decides_the_sweeps_gpu_scale_warning(tmp_path):
    """Issue 21: the warning was `if ab.task == "apollo3"`; a task of one's own that includes apollo3 (scale
    paper) gets it too, and a task declaring scale: micro never does."""
    from harness.sweep.ablation import Ablation
    from harness.sweep.runner import warn_scale

    space = {"seed": {"type": "int", "low": 0, "high": 1}}
    paper = Ablation(name="p", task=str(_child(tmp_path, "")), search_space=space)
    assert "paper-scale task (GPU-scale ablations)" in warn_scale(paper, {"model": "tiny"})
    assert "apollo3_micro" in warn_scale(paper, {"model": "micro"})
    assert warn_scale(paper, {"model": "Qwen/Qwen2.5-3B-Instruct"}) is None
    micro = Ablation(name="m", task=str(_child(tmp_path, "scale: micro\n", name="m")), search_space=space)
    assert warn_scale(micro, {"model": "tiny"}) is None
    with pytest.raises(ConfigError, match="scale"):
        load_task(_child(tmp_path, "scale: huge\n", name="h"))


def test_local_model_names_are_listed_once():
    from harness.models.resolve import LOCAL_MODELS, MICRO_SCALE_MODELS, is_micro_scale
    from harness.policies import LOCAL_MODELS as OFFERED
    from harness.policies import known_model_names

    assert OFFERED is LOCAL_MODELS is MICRO_SCALE_MODELS and set(LOCAL_MODELS) <= set(known_model_names())
    assert all(is_micro_scale(m) for m in LOCAL_MODELS)


# ----------------------------------------------------------------------------- names that become paths


@pytest.mark.parametrize("name", ["../evil", "/abs/name", "a/b", "..", ".hidden", "", "x" * 200, "-flag"])
def test_unsafe_task_names_are_refused(tmp_path, name):
    """Issue 27: a task name with ../ steered the data cache (<cache>/<task name>/) outside its folder."""
    with pytest.raises(ConfigError, match="task name .* is not a plain name"):
        load_task(_write(tmp_path / "child" / "task.yaml", f"include: {APOLLO3}\nname: {name!r}\n"))


def test_unsafe_preset_and_file_names_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="preset name '../x' is not a plain name"):
        load_task(_child(tmp_path, "presets: {'../x': {reward_weights: {correctness: 1}}}\n"))
    with pytest.raises(ConfigError, match="data file name '../../etc/passwd' is not a plain name"):
        load_task(_child(tmp_path, "data: {files: {chunks: {name: ../../etc/passwd}}}\n", name="f"))


def test_a_task_argument_is_a_name_or_an_existing_path(tmp_path):
    with pytest.raises(ConfigError, match="no task file at '../apollo3'"):
        load_task("../apollo3")
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        load_task("nope")


@pytest.mark.parametrize("name", ["../../../escaped", "/abs/escaped", "a/../../b"])
def test_unsafe_ablation_names_are_refused(tmp_path, name):
    """Issue 27: an ablation named ../../../escaped (or absolute) wrote its study outside runs/sweeps/."""
    from harness.sweep.ablation import load_ablation

    path = _write(tmp_path / "ab.yaml", yaml.safe_dump({"name": name, "task": "apollo3", "search_space": {
        "seed": {"type": "int", "low": 0, "high": 1}}}))
    with pytest.raises(ConfigError, match="ablation name .* is not a plain name"):
        load_ablation(path)


def test_shipped_ablations_resolve_by_name(tmp_path, monkeypatch):
    """Issue 26: `harness sweep micro_retry` works from any folder."""
    from harness.sweep.ablation import ablation_path, load_ablation

    monkeypatch.chdir(tmp_path)
    assert ablation_path("micro_retry") == REPO / "ablations" / "micro_retry.yaml"
    assert load_ablation("micro_retry").name == "micro_retry"
    with pytest.raises(ConfigError, match="no ablation file 'micro_rety'.*micro_retry"):
        ablation_path("micro_rety")
    with pytest.raises(ConfigError, match="no ablation file"):
        ablation_path("../ablations/micro_retry")
    from harness.cli.validate import validate_file

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "no-data"))
    assert validate_file(Path("micro_retry")) == "ablation"
    assert validate_file(Path("apollo3")).startswith("task; data checks skipped")


def test_a_task_path_names_the_default_run_folder_by_its_folder(tmp_path):
    from harness.evaluation.config import RunConfig
    from harness.evaluation.run import EvalRun
    from harness.train.config import TrainConfig
    from harness.train.runner import TrainRun

    task = tmp_path / "mytask" / "task.yaml"
    task.parent.mkdir()
    task.write_text("include: apollo3\nname: mytask\n")
    out = EvalRun(RunConfig(task=str(task), model="one-search")).out
    assert out.parent == Path("runs") and out.name.startswith("mytask-one-search-")
    out = TrainRun(TrainConfig(task=str(task), model="tiny")).out
    assert out.parent == Path("runs") and out.name.startswith("train-mytask-rezero-tiny-")


def test_a_task_and_its_presets_carry_training_defaults_the_run_can_override(tmp_path):
    """The micro task's recipe that learns (issue #26) is the task's, not only a doc's: lr, group size,
    threads; a run's own options win; an unknown or run-naming key is refused by harness validate."""
    from harness.train.config import TrainConfig, with_task_defaults

    cfg = with_task_defaults(TrainConfig(task="apollo3_micro"))
    assert (cfg.learning_rate, cfg.num_generations, cfg.threads) == (5e-4, 8, 1)
    assert with_task_defaults(TrainConfig(task="apollo3_micro", num_generations=4)).num_generations == 4
    assert with_task_defaults(TrainConfig(task="apollo3")) == TrainConfig(task="apollo3")  # apollo3 sets none
    task = tmp_path / "t" / "task.yaml"
    task.parent.mkdir()
    task.write_text("include: apollo3\nname: t\ntrain: {learning_rate: 0.002}\n"
                    "presets: {baseline: {train: {learning_rate: 0.003, beta: 0.0}}}\n")
    base = with_task_defaults(TrainConfig(task=str(task), preset="baseline"))
    assert (base.learning_rate, base.beta) == (0.003, 0.0)                      # preset over task
    assert with_task_defaults(TrainConfig(task=str(task))).learning_rate == 0.002  # rezero: the task's
    refused = (("learning_rte: 1", "learning_rte: unknown option"), ("output_dir: x", "cannot set output_dir"))
    for bad, message in refused:
        task.write_text(f"include: apollo3\nname: t\ntrain: {{{bad}}}\n")
        res = CliRunner().invoke(app, ["validate", str(task)])
        assert res.exit_code == 1 and message in res.output, res.output
