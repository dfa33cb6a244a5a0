"""Hostile input, round two (issue 27): each class of failure the second pass found, tested where it is fixed.

Data lost (an output path over what the harness keeps), silently wrong results (a dead trial counted as
covered, empty lists, duplicate YAML keys, out-of-range numbers), unbounded work (YAML aliases, huge
sizes), late crashes (seeds, infinities), tracebacks where one line belongs (storage, corrupt
checkpoints, full disks, SIGTERM) and a password written in clear. The command-level re-run of the
cases is ``tests/test_hostile_cases.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from harness.cli.app import app
from harness.core.errors import ConfigError

pytestmark = pytest.mark.tier("unit")

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(res) -> str:
    """The command's one error line (a ConfigError the CLI would print as ``error: ...``)."""
    if isinstance(res.exception, ConfigError):
        return str(res.exception)
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    return res.output


# ----------------------------------------------------------------------------- YAML: duplicates, aliases, size
def test_a_duplicate_key_is_refused_in_every_yaml_the_harness_reads(tmp_path):
    from harness.core.config import read_yaml
    from harness.core.options import read_mapping

    f = tmp_path / "dup.yaml"
    f.write_text("model: one-search\nseed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: not valid YAML: line 3: duplicate key 'seed' \(first at line 2"):
        read_yaml(f)
    j = tmp_path / "dup.json"
    j.write_text('{"run": {"seed": 1, "seed": 2}}')
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        read_mapping(j)
    # merge keys still merge, and an explicit key still overrides a merged one
    f.write_text("base: &b {seed: 1, lr: 0.1}\nrun:\n  <<: *b\n  seed: 2\n")
    assert read_yaml(f)["run"] == {"seed": 2, "lr": 0.1}


def test_validate_refuses_an_ablation_with_a_key_given_twice(tmp_path):
    ab = tmp_path / "ab.yaml"
    ab.write_text("name: dup\ntask: apollo3_micro\nbase: {max_steps: 2}\nsearch_space:\n"
                  "  seed: {type: categorical, choices: [0, 1]}\nseed: 3\nbase: {max_steps: 5}\n")
    res = invoke("validate", str(ab))
    assert res.exit_code == 1
    assert "duplicate key 'base' (first at line 3)" in res.output


def test_a_billion_laughs_is_refused_at_once_and_nothing_prints_it(tmp_path, caplog):
    from harness.core.options import load_config
    from harness.evaluation.config import RunConfig

    f = tmp_path / "laughs.yaml"
    f.write_text(LAUGHS + "model: *i\n")
    with pytest.raises(ConfigError, match="expand to more than 100000 values"):   # before a value is built
        load_config(RunConfig, "run", f)
    f.write_text("a: &a [*a]\n")
    with pytest.raises(ConfigError, match="refers to a node that contains it"):
        load_config(RunConfig, "run", f)


def test_ablation_choices_made_of_aliases_are_refused_by_validate(tmp_path):
    ab = tmp_path / "ab.yaml"
    ab.write_text(LAUGHS + "name: laughs\ntask: apollo3_micro\nsearch_space:\n"
                  "  seed: {type: categorical, choices: *i}\n")
    res = invoke("validate", str(ab))
    assert res.exit_code == 1 and "expand to more than 100000 values" in res.output


def test_messages_and_log_lines_never_print_a_long_value_whole(caplog):
    """A 900 KB model name in a config file came back whole in `error: File name too long: xxx...` (and in
    any log line naming it): every error line and log line cuts a long word in its middle."""
    from harness.core.errors import PrintableFilter, printable

    line = printable("File name too long: " + "x" * 900_000)
    assert len(line) < 300 and line.startswith("File name too long: x") and "[899,800 more]" in line
    record = logging.LogRecord("harness", logging.INFO, __file__, 1, "no model %r", ("y" * 50_000,), None)
    assert PrintableFilter().filter(record) and len(record.getMessage()) < 300


def test_a_config_file_over_a_mib_is_refused_unread(tmp_path):
    from harness.core.options import read_mapping

    for name in ("big.yaml", "big.json"):
        f = tmp_path / name
        f.write_text('{"model": "' + "x" * (2 << 20) + '"}')
        with pytest.raises(ConfigError, match="larger than the 1,048,576 a config file may be"):
            read_mapping(f)


def test_the_layering_log_line_never_prints_a_value_whole(caplog):
    from harness.core.options import layer
    from harness.evaluation.config import RunConfig

    huge = "m" * 5_000_000
    with caplog.at_level(logging.INFO, logger="harness"), pytest.raises(ConfigError):
        layer(RunConfig, file_values={"model": huge, "seed": -1}, source="big.yaml", what="run config")
    assert caplog.text and max(len(r.getMessage()) for r in caplog.records) < 1000


# ----------------------------------------------------------------------------- values validated at the boundary
@pytest.mark.parametrize("model", ["run", "train"])
@pytest.mark.parametrize("values, words", [
    ({"seed": -1}, "--seed: Input should be greater than or equal to 0"),
    ({"seed": 2**32}, "--seed: Input should be less than or equal to 4294967295"),
    ({"temperature": float("inf")}, "--temperature: Input should be a finite number"),
    ({"temperature": float("nan")}, "--temperature: Input should be greater than"),
    ({"model": ""}, "--model: empty value"),
    ({"task": "  "}, "--task: empty value"),
])
def test_configs_refuse_what_would_crash_after_the_work(model, values, words):
    from harness.core.options import build
    from harness.evaluation.config import RunConfig
    from harness.train.config import TrainConfig

    cls = RunConfig if model == "run" else TrainConfig
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        build(cls, values, what="config")


@pytest.mark.parametrize("values, words", [
    ({"learning_rate": float("inf")}, "--learning-rate: Input should be a finite number"),
    ({"beta": float("inf")}, "--beta: Input should be a finite number"),
    ({"train_noise_modes": ""}, "--train-noise-modes: empty value"),
    ({"eval_noise_modes": " , "}, "--eval-noise-modes: empty list"),
])
def test_train_config_refuses_non_finite_and_empty_values(values, words):
    from harness.train.config import TrainConfig

    with pytest.raises(ConfigError, match=words):
        TrainConfig.build(**values)


def test_empty_noise_lists_are_refused_not_run():
    from harness.core.config import make_noise
    from harness.core.options import build
    from harness.evaluation.config import RunConfig

    for flag, value in (("--noise", ""), ("--noise", ","), ("--noise-mode", ""), ("--noise-mode", " ")):
        field = "noise_levels" if flag == "--noise" else "noise_modes"
        with pytest.raises(ConfigError, match=f"{flag}: empty"):
            build(RunConfig, {field: value}, what="run config")
    with pytest.raises(ConfigError, match="no noise mode given"):
        make_noise(0.5, "")


def test_a_micro_build_seed_outside_numpys_range_is_refused():
    from harness.models.resolve import micro_spec

    with pytest.raises(ConfigError, match="seed must be in 0 .. 4294967295"):
        micro_spec("micro:seed=-1")


def _numeric_params():
    """(command path, typer parameter) for every int or float option of every command."""
    from harness.cli.options import _strip_optional

    root = typer.main.get_command(app)

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, (*path, name))
        for p in cmd.params:
            if _strip_optional(p.type_descriptor.annotation) in (int, float):
                yield " ".join(path), p

    return list(walk(root, ()))


def test_every_numeric_option_of_every_command_is_bounded_where_it_is_declared():
    from harness.evaluation.config import RunConfig
    from harness.train.config import TrainConfig

    generated = {"run": RunConfig, "train": TrainConfig}
    unbounded = []
    params = _numeric_params()
    assert len(params) > 40
    for command, p in params:
        model = generated.get(command)
        if model is not None and p.name in model.model_fields:   # the config model bounds it (pydantic)
            meta = model.model_fields[p.name].metadata
            if not any(hasattr(m, "ge") or hasattr(m, "gt") for m in meta):
                unbounded.append(f"{command} --{p.name} (field without ge/gt)")
            continue
        if p.min is None:
            unbounded.append(f"{command} {p.opts[0]} (no lower bound)")
        elif p.callback is None or p.callback.__name__ != "finite":
            unbounded.append(f"{command} {p.opts[0]} (not checked finite)")
    assert unbounded == []
    from harness.core.options import build

    for model in generated.values():       # and every float of the generated options is refused infinite
        for name, f in model.model_fields.items():
            if f.annotation in (float, float | None):
                with pytest.raises(ConfigError, match="finite number|less than"):
                    build(model, {name: float("inf")}, what="config")


@pytest.mark.parametrize("args, flag", [
    (["search", "oxygen", "-k", "0"], "-k"),
    (["search", "oxygen", "-k", "-3"], "-k"),
    (["search", "oxygen", "--seed", "-1"], "--seed"),
    (["bench", "retrieval", "--repeats", "-1"], "--repeats"),
    (["bench", "env", "--limit", "-5"], "--limit"),
    (["bench", "detect", "--count", "0"], "--count"),
    (["bench", "protocol", "--sizes", "100000000"], "--sizes"),
    (["bench", "protocol", "--sizes", ""], "--sizes"),
    (["sweep", "micro_retry", "--workers", "0"], "--workers"),
    (["sweep", "micro_retry", "--workers", "-1"], "--workers"),
    (["sweep", "micro_retry", "--n-trials", "0"], "--n-trials"),
    (["sweep", "micro_retry", "--trial-timeout", "0"], "--trial-timeout"),
    (["sweep", "micro_retry", "--trial-timeout", "nan"], "--trial-timeout"),
    (["micro", "build", "--steps", "-1"], "--steps"),
    (["micro", "build", "--seed", "-1"], "--seed"),
    (["analyze", "x", "--delta", "inf"], "--delta"),
    (["lmeval", "--model", "tiny", "--limit", "0"], "--limit"),
])
def test_out_of_range_numbers_are_refused_before_any_work(args, flag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert "Invalid value" in res.output and flag in res.output
    assert list(tmp_path.iterdir()) == []          # nothing written, no lock left behind


#: Hand-declared text options where an empty value means something: `bench env --model ''` skips the model,
#: `cells --by ''` compares over the whole study, `bench corpus --prefix/--source ''` add nothing.
EMPTY_MEANS_SOMETHING = {("bench env", "--model"), ("cells", "--by"), ("bench corpus", "--prefix"),
                         ("bench corpus", "--source")}


def test_every_text_option_of_every_command_refuses_an_empty_value():
    """`search --retriever ''` searched with the task's retriever, `sweep --storage ''` used the default
    storage and `sweep --study-name ''` the ablation's name, each without a word: empty values are refused
    where each option is declared (run and train: their config models)."""
    from harness.cli.options import _strip_optional
    from harness.evaluation.config import RunConfig
    from harness.train.config import TrainConfig

    root = typer.main.get_command(app)

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, (*path, name))
        for p in cmd.params:
            if _strip_optional(p.type_descriptor.annotation) is str:
                yield " ".join(path), p

    generated = {"run": RunConfig, "train": TrainConfig}
    texts = list(walk(root, ()))
    assert len(texts) > 40
    unchecked = [f"{command} {p.opts[0]}" for command, p in texts
                 if command not in generated and (command, p.opts[0]) not in EMPTY_MEANS_SOMETHING
                 and (p.callback is None or p.callback.__name__ != "given")]
    assert unchecked == []
    from harness.core.options import build

    for model in generated.values():
        for name, f in model.model_fields.items():
            if str in (f.annotation, _strip_optional(f.annotation)) and name != "model_args":
                with pytest.raises(ConfigError, match="empty value"):
                    build(model, {name: " "}, what="config")


@pytest.mark.parametrize("args, flag", [
    (["search", "oxygen", "--retriever", ""], "--retriever"),
    (["search", "oxygen", "--question-id", ""], "--question-id"),
    (["search", ""], "query"),
    (["sweep", "micro_retry", "--storage", ""], "--storage"),
    (["sweep", "micro_retry", "--study-name", " "], "--study-name"),
    (["report", "x", "--study-name", ""], "--study-name"),
    (["cells", "x", "--arm", ""], "--arm"),
    (["micro", "path", ""], "model"),
])
def test_empty_text_values_are_refused_before_any_work(args, flag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert "empty value" in res.output and flag in res.output
    assert list(tmp_path.iterdir()) == []


def test_a_finite_check_refuses_nan_that_ranges_let_through():
    from harness.cli.options import finite

    assert finite(0.5) == 0.5 and finite(3) == 3 and finite(None) is None
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(typer.BadParameter, match="not a finite number"):
            finite(bad)


# ----------------------------------------------------------------------------- outputs: never over the harness's files
def _fake_run(root: Path) -> Path:
    run = root / "run"
    run.mkdir()
    for name, text in (("config.json", '{"run": {}}'), ("results.json", "{}"), ("samples.jsonl", "{}\n")):
        (run / name).write_text(text)
    return run


def test_an_output_inside_a_run_or_over_a_studys_files_is_refused(tmp_path):
    from harness.core.outputs import check_output
    from harness.report.page import is_report

    run = _fake_run(tmp_path)
    for target in ("samples.jsonl", "results.json", "config.json", "curve.csv", "sub/x.html"):
        with pytest.raises(ConfigError, match="which harness report does not write into"):
            check_output(run / target, "harness report", own=("report.html",))
    assert check_output(run / "report.html", "harness report", own=("report.html",)) == run / "report.html"
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.db").write_bytes(b"SQLite format 3\0")
    with pytest.raises(ConfigError, match="study.db is a file of the study directory"):
        check_output(study / "study.db", "harness report", own=("report.html",))
    assert check_output(study / "page.html", "harness report") == study / "page.html"
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    with pytest.raises(ConfigError, match="exists and was not written by harness report; .* --force"):
        check_output(mine, "harness report", is_ours=is_report)
    assert check_output(mine, "harness report", force=True, is_ours=is_report) == mine
    with pytest.raises(ConfigError, match="is a run directory"):
        check_output(run, "harness micro build", folder=True)


def test_run_and_train_refuse_a_directory_that_holds_the_other_kind_of_run(tmp_path):
    from harness.core.rundir import RunLifecycle

    run = _fake_run(tmp_path)
    for section, words in (("train", "holds a `harness run` run (samples.jsonl), not one of `harness train`"),):
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
            RunLifecycle(run, section=section, noun="a training run", what="the curve").open({}, resume=False)
    inner = run / "inner"
    with pytest.raises(ConfigError, match="lies inside the run directory"):
        RunLifecycle(inner, section="run", noun="a run", what="the episodes").open({}, resume=False)
    assert not inner.exists() and not (run / ".lock.json").exists()


def test_micro_build_refuses_a_folder_it_would_wipe(tmp_path):
    from harness.models.micro import check_build_target

    run = _fake_run(tmp_path)
    for target in (run, run / "model"):
        with pytest.raises(ConfigError, match="which harness micro build does not write into"):
            check_build_target(target)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="holds files that are not a model build"):
        check_build_target(other)
    assert check_build_target(tmp_path / "new") == tmp_path / "new"


# ----------------------------------------------------------------------------- storage
def test_storage_urls_are_masked_mapped_and_explained():
    from harness.core.storage import mask_url, storage_error, storage_url

    assert mask_url("postgresql://me:s3cret@db:5432/optuna") == "postgresql://me:***@db:5432/optuna"
    assert "s3cret" not in mask_url("x://u:s3cret@h/db")
    assert storage_url("postgresql://u@h/db").startswith(("postgresql+psycopg2://", "postgresql://"))
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        assert storage_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert storage_error("x", ValueError("a bug")) is None


@pytest.mark.parametrize("url, words", [
    ("garbage", "storage 'garbage' is not a database URL"),
    ("sqlite:////nonexistent/dir/x.db", "cannot open storage sqlite:////nonexistent/dir/x.db: unable to open "
                                        "database file (does its folder exist"),
    ("postgresql://me:s3cret@127.0.0.1:1/db", "cannot open storage postgresql://me:***@127.0.0.1:1/db: connection"),
])
def test_a_storage_that_cannot_be_opened_is_one_line_and_leaves_no_folder(url, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("sweep", "micro_retry", "--storage", url, "-o", "study")
    assert isinstance(res.exception, ConfigError), res.output
    assert words in str(res.exception) and "s3cret" not in str(res.exception)
    assert "\n" not in str(res.exception)
    assert list(tmp_path.iterdir()) == []
    res = invoke("report", str(tmp_path), "--storage", url)
    assert isinstance(res.exception, ConfigError), res.output
    assert "s3cret" not in str(res.exception) and "\n" not in str(res.exception)


def _study(tmp_path: Path, user_attrs: dict | None = None) -> Path:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tmp_path / "study"
    folder.mkdir()
    s = optuna.create_study(study_name="s", storage=f"sqlite:///{folder / 'study.db'}", direction="maximize")
    d = {"seed": optuna.distributions.CategoricalDistribution([0, 1])}
    for seed, v in ((0, 0.5), (1, 0.4)):
        s.add_trial(optuna.trial.create_trial(params={"seed": seed}, distributions=d, value=v,
                                              user_attrs=user_attrs or {}))
    return folder


def test_report_of_a_study_name_the_storage_lacks_is_one_line(tmp_path):
    folder = _study(tmp_path)
    res = invoke("report", str(folder), "--study-name", "nope")
    assert isinstance(res.exception, ConfigError)
    assert str(res.exception) == f"no study 'nope' in sqlite:///{folder / 'study.db'}; studies: s"


def test_report_of_a_study_with_strings_where_numbers_belong(tmp_path):
    folder = _study(tmp_path, {"peak": "high", "peak_step": "abc", "collapse_step": "x", "zero_step": [1],
                               "run_dir": 5, "stopped": 3})
    res = invoke("report", str(folder), "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 0, (res.output, res.exception)
    assert (tmp_path / "r.html").is_file()


# ----------------------------------------------------------------------------- a sweep never counts a dead trial
def _age_heartbeat(url: str, trial_id: int, seconds: int) -> None:
    """Move a trial's last heartbeat ``seconds`` into the past (a worker that stopped beating that long ago),
    so the tests need no sleep to make a heartbeat stale."""
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        n = db.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?) WHERE trial_id = ?",
                       (f"-{seconds} seconds", trial_id)).rowcount
    assert n == 1


def test_a_trial_running_without_a_heartbeat_is_waited_for_and_run_again(tmp_path, monkeypatch, caplog):
    """The issue's case: a worker killed within the heartbeat grace period left its trial RUNNING; the re-run
    counted it as covered, exited 0 with {RUNNING: 1, COMPLETE: ...} and one grid cell missing."""
    import optuna

    from harness.sweep import runner as sweep_runner
    from harness.sweep import study as sweep_study
    from harness.sweep.ablation import load_ablation
    from harness.sweep.study import default_storage, open_study
    from harness.sweep.trial import TrialRunner

    monkeypatch.setattr(sweep_study, "HEARTBEAT_S", 1)
    monkeypatch.setattr(sweep_study, "GRACE_S", 15)
    monkeypatch.setattr(sweep_runner, "HEARTBEAT_S", 1, raising=False)
    monkeypatch.setattr(sweep_runner, "GRACE_S", 15, raising=False)

    class Runner(TrialRunner):
        def run(self, trial, params):
            return float(params["seed"])

    monkeypatch.setattr(sweep_runner, "TrialRunner", Runner)
    ab_path = tmp_path / "grid.yaml"
    ab_path.write_text(yaml.safe_dump({"name": "g", "task": "apollo3", "sampler": {"name": "grid"},
                                       "search_space": {"seed": {"type": "categorical", "choices": [0, 1]}}}))
    ab, url = load_ablation(str(ab_path)), default_storage(tmp_path)
    study = open_study(ab, url, "g")
    dead = study.ask()            # the killed worker's trial: it beat once, then stopped
    study._storage.record_heartbeat(dead._trial_id)
    # silent for over two heartbeats (2 s), well within the 15 s grace period: 14 s here left 1 s of slack, which
    # a loaded machine spent before the worker looked (Optuna then failed the trial itself, without the warning)
    _age_heartbeat(url, dead._trial_id, 6)
    with caplog.at_level(logging.WARNING):
        sweep_runner.run_worker(str(ab_path), url, "g", tmp_path, 2, {})
    trials = optuna.load_study(study_name="g", storage=url).trials
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"], states    # the dead one failed, its cell run again
    assert sorted(t.params["seed"] for t in trials if t.state.name == "COMPLETE") == [0, 1]
    assert "RUNNING without a live heartbeat" in caplog.text


def test_the_summary_of_a_study_with_a_dead_trial_is_not_finished(tmp_path, monkeypatch):
    from harness.sweep import study as sweep_study
    from harness.sweep.ablation import Ablation
    from harness.sweep.study import default_storage, open_study, summarize

    monkeypatch.setattr(sweep_study, "HEARTBEAT_S", 1)
    ab = Ablation(name="g", task="apollo3", sampler={"name": "grid"},
                  search_space={"seed": {"type": "categorical", "choices": [0, 1]}})
    url = default_storage(tmp_path)
    study = open_study(ab, url, "g")
    study.tell(study.ask(), 1.0)
    dead = study.ask()
    study._storage.record_heartbeat(dead._trial_id)
    _age_heartbeat(url, dead._trial_id, 60)   # a worker that stopped beating a minute ago
    summary = summarize(ab, url, "g")
    assert summary["running"] == [1] and summary["running_without_heartbeat"] == [1]


# ----------------------------------------------------------------------------- checkpoints that cannot be read back
class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXECUTED",))


def _checkpoint(folder: Path, step: int) -> Path:
    import random

    import numpy as np
    import torch
    from safetensors.torch import save_file

    ck = folder / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    save_file({"w": torch.zeros(64, 64)}, str(ck / "model.safetensors"))
    torch.save({"state": {}}, ck / "optimizer.pt")
    torch.save({"last_epoch": step}, ck / "scheduler.pt")
    # what transformers saves: numpy's state too (numpy arrays and dtypes, allowed on resume by the trainer)
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()},
               ck / "rng_state.pth")
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (ck / "harness_state.json").write_text(json.dumps({"step": step}))
    return ck


def test_an_unreadable_checkpoint_is_named_and_nothing_in_it_runs(tmp_path, monkeypatch):
    import torch

    from harness.train.runner import checkpoint_problems

    monkeypatch.chdir(tmp_path)
    ck = _checkpoint(tmp_path / "checkpoints", 2)
    assert checkpoint_problems(ck) == []
    weights = ck / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    torch.save(_Evil(), ck / "rng_state.pth")           # a pickle that would run a command if loaded
    problems = checkpoint_problems(ck)
    assert any(p.startswith("model.safetensors is cut short") for p in problems), problems
    assert "rng_state.pth cannot be loaded safely (UnpicklingError)" in problems
    assert not (tmp_path / "EXECUTED").exists()


def test_resume_falls_back_from_an_unreadable_checkpoint_to_the_previous_one(tmp_path, caplog):
    from harness.train.config import TrainConfig
    from harness.train.runner import TrainRun

    run = TrainRun(TrainConfig.build(model="tiny", output_dir=str(tmp_path / "run"), resume=True))
    good = _checkpoint(run.out / "checkpoints", 1)
    bad = _checkpoint(run.out / "checkpoints", 2)
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with caplog.at_level(logging.WARNING):
        assert run._last_checkpoint() == good
    assert not bad.exists() and "checkpoint-2 is incomplete or unreadable (model.safetensors" in caplog.text


# ----------------------------------------------------------------------------- full disks name the path
def test_a_failed_write_names_its_file_and_leaves_the_old_one(tmp_path):
    from harness.core.io import named

    err = named(OSError(28, "No space left on device"), tmp_path / "results.json")
    assert err.errno == 28 and err.filename == str(tmp_path / "results.json")
    from harness.train.runner import write_failure

    torch_err = RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: PytorchStreamWriter "
                             "failed writing file data/0: file write failed")
    failure = write_failure(torch_err, tmp_path / "checkpoints")
    assert isinstance(failure, OSError) and failure.filename == str(tmp_path / "checkpoints")
    assert write_failure(KeyError("x"), tmp_path) is None


def test_a_report_that_fails_is_an_error_line_and_the_results_stay(tmp_path):
    from harness.cli.reports import ReportFailed, report_run

    run = _fake_run(tmp_path)
    (run / "results.json").write_text("{not json")
    (run / "report.html").mkdir()          # the page cannot be written
    with pytest.raises(ReportFailed, match=r"the report could not be written .*the results are complete in"):
        report_run(run, "t")
    assert (run / "samples.jsonl").read_text() == "{}\n"
