"""Config models as the one declaration of every option: generated CLI, --config files, layering, records."""

from __future__ import annotations

import csv
import json
import logging

import pytest
import typer
import yaml
from pydantic import BaseModel, Field, create_model
from typer.testing import CliRunner

from harness.cli.app import app
from harness.cli.options import config_command
from harness.core.errors import ConfigError
from harness.core.options import cli, flags_of, load_config, read_config_file
from harness.evaluation.config import RunConfig
from harness.train.config import TrainConfig, resolve

runner = CliRunner()


def _click_command(name: str):
    return typer.main.get_command(app).commands[name]


def _capture(model, section="train"):
    """A throwaway app whose one command records the config it was given (no training, no evaluation)."""
    got = []
    tiny = typer.Typer()
    tiny.command("go")(config_command(model, got.append, section=section, name="go", doc="capture"))
    tiny.command("other")(lambda: None)   # two commands, so "go" is a subcommand as train and run are
    return tiny, got


def _go(model, *args, section="train"):
    tiny, got = _capture(model, section)
    res = runner.invoke(tiny, ["go", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return got[0]


# ----------------------------------------------------------------------------- the generated command line
@pytest.mark.unit
@pytest.mark.parametrize("command,model", [("train", TrainConfig), ("run", RunConfig)])
def test_every_field_is_an_option_with_its_flags_default_and_help(command, model):
    params = {p.name: p for p in _click_command(command).params}
    assert set(params) == set(model.model_fields) | {"config"}
    for name, field in model.model_fields.items():
        p = params[name]
        assert set(flags_of(model, name)) <= set(p.opts), (name, p.opts)
        assert field.description and p.help.lower().startswith(field.description[:10].lower()), name
        if field.annotation is bool:
            assert p.secondary_opts == ["--no-" + p.opts[0][2:]]


@pytest.mark.unit
def test_adding_a_field_adds_the_option():
    Extended = create_model("Extended", __base__=TrainConfig,
                            stop_on_collapse=(bool, Field(False, description="stop once the curve collapsed")),
                            patience=(int, Field(3, ge=1, description="evals to wait",
                                                 json_schema_extra=cli("--patience", "-P"))))
    tiny, _ = _capture(Extended)
    params = {p.name: p for p in typer.main.get_command(tiny).commands["go"].params}
    assert set(params) == set(TrainConfig.model_fields) | {"config", "stop_on_collapse", "patience"}
    assert params["stop_on_collapse"].opts == ["--stop-on-collapse"]
    assert params["stop_on_collapse"].secondary_opts == ["--no-stop-on-collapse"]
    assert params["patience"].opts == ["--patience", "-P"] and params["patience"].help == "Evals to wait."
    cfg = _go(Extended, "--stop-on-collapse", "-P", "5", "--lr", "0.01")
    assert (cfg.stop_on_collapse, cfg.patience, cfg.learning_rate) == (True, 5, 0.01)
    assert _go(Extended).patience == 3
    res = runner.invoke(tiny, ["go", "--patience", "0"])
    assert isinstance(res.exception, ConfigError) and "--patience: Input should be greater than or equal to 1" in str(
        res.exception)


@pytest.mark.unit
def test_existing_flags_and_aliases_still_work():
    cfg = _go(TrainConfig, "-t", "apollo3_micro", "-m", "micro", "-G", "8", "--lr", "1e-3", "-o", "out", "--no-report",
              "--vllm", "--resume", "--loss-type", "grpo", "--train-noise", "0.5")
    assert (cfg.task, cfg.model, cfg.num_generations, cfg.learning_rate, cfg.output_dir) == \
        ("apollo3_micro", "micro", 8, 1e-3, "out")
    assert (cfg.report, cfg.vllm, cfg.resume, cfg.loss_type, cfg.train_noise) == (False, True, True, "grpo", 0.5)
    assert _go(TrainConfig, "--learning-rate", "2e-3").learning_rate == 2e-3
    cfg = _go(RunConfig, "-t", "apollo3", "-m", "oracle-retry", "-b", "scripted", "--noise", "0,0.5", "--noise-mode",
              "drop_gold,random", "-k", "5", "-o", "d", "--no-report", "--limit", "3", section="run")
    assert (cfg.model, cfg.backend, cfg.noise_levels, cfg.noise_modes, cfg.k, cfg.report, cfg.eval_limit) == \
        ("oracle-retry", "scripted", [0.0, 0.5], ["drop_gold", "random"], 5, False, 3)


@pytest.mark.unit
def test_loss_type_is_a_choice_and_bad_values_name_their_flag():
    tiny, _ = _capture(TrainConfig)
    res = runner.invoke(tiny, ["go", "--loss-type", "ppo"])
    assert res.exit_code == 2 and "ppo" in res.output
    res = runner.invoke(tiny, ["go", "-G", "1"])
    assert "--num-generations: Input should be greater than or equal to 2" in str(res.exception)
    res = runner.invoke(_capture(RunConfig, "run")[0], ["go", "--noise", "0,x"])
    assert "--noise[1]: Input should be a valid number" in str(res.exception)
    res = runner.invoke(_capture(RunConfig, "run")[0], ["go", "--noise", "0,2"])
    assert "--noise[1]: Input should be less than or equal to 1" in str(res.exception)


# ----------------------------------------------------------------------------- --config and precedence
@pytest.mark.unit
def test_defaults_then_file_then_command_line(tmp_path, caplog):
    f = tmp_path / "t.yaml"
    f.write_text("learning-rate: 0.5\nmax_steps: 7\nseed: 3\nreport: false\n")
    with caplog.at_level(logging.INFO, logger="harness.core.options"):
        cfg = _go(TrainConfig, "--config", str(f), "--lr", "0.1", "--seed", "0")
    assert cfg.learning_rate == 0.1                       # command line over file
    assert cfg.max_steps == 7 and cfg.report is False     # file over default
    assert cfg.seed == 0                                   # given at its default value: still the command line's
    assert cfg.eval_every == TrainConfig().eval_every     # neither: the model's default
    assert f"{f} sets learning_rate=0.5, max_steps=7, seed=3, report=False" in caplog.text
    assert "command line sets learning_rate=0.1, seed=0" in caplog.text
    # an option left at its default never overrides the file (here: --report is True by default)
    assert _go(TrainConfig, "--config", str(f)).report is False


@pytest.mark.unit
def test_json_config_and_run_options(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"model": "one-search", "noise_levels": [0, 0.5], "noise_modes": "drop_gold,shuffle"}))
    cfg = _go(RunConfig, "--config", str(f), "--noise", "0.3", section="run")
    assert (cfg.model, cfg.noise_levels, cfg.noise_modes) == ("one-search", [0.3], ["drop_gold", "shuffle"])


@pytest.mark.unit
@pytest.mark.parametrize("text,name,needle", [
    ("max_stepz: 3\n", "a.yaml", "a.yaml: max_stepz: unknown option (did you mean max_steps?)"),
    ("max_steps: sixty\n", "a.yaml", "max_steps (from "),
    ("train_noise: 1.5\n", "a.yaml", "train_noise (from "),
    ("- 1\n- 2\n", "a.yaml", "expected a mapping"),
    ("{not json", "a.json", "not a readable JSON file"),
    ('{"run": {"model": "x"}, "task": {}}', "config.json", "is the record of a `harness run` run"),
])
def test_bad_config_files_are_one_clear_error_naming_the_file(tmp_path, text, name, needle):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, "train", f, what="train config")
    assert needle in str(e.value) and str(f) in str(e.value), str(e.value)


@pytest.mark.unit
def test_missing_config_file_exits_2_without_traceback(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "harness", "train", "--config", str(tmp_path / "none.yaml")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: config file not found") and "Traceback" not in p.stderr


# ----------------------------------------------------------------------------- run records round-trip
@pytest.mark.unit
def test_train_record_round_trips(tmp_path, task):
    cfg = TrainConfig(preset="baseline", model="micro", learning_rate=5e-4, train_noise=0.5, train_noise_mode="random",
                      eval_limit=4, max_steps=2, eval_every=1, output_dir="runs/x", resume=True, threads=1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(resolve(cfg, task).to_dict(cfg), indent=2))   # what TrainRun writes
    back = load_config(TrainConfig, "train", path)
    assert back == cfg.model_copy(update={"resume": False})   # resume is an action: the command line's to say
    yaml_path = tmp_path / "config.yaml"
    yaml_path.write_text(yaml.safe_dump(cfg.model_dump()))
    assert load_config(TrainConfig, "train", yaml_path) == cfg   # a flat file keeps everything it says


@pytest.mark.unit
def test_run_record_round_trips(tmp_path, task):
    cfg = RunConfig(model="oracle-retry", noise_levels=[0, 0.5], noise_modes=["drop_gold"], k=2, limit=3, seed=4)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"run": cfg.model_dump(), "task": task.model_dump()}))   # what EvalRun writes
    assert load_config(RunConfig, "run", path) == cfg
    assert read_config_file(path, "run")["noise_levels"] == [0, 0.5]


@pytest.mark.unit
def test_validate_accepts_records_and_option_files(tmp_path, task):
    from harness.cli.validate import validate_file

    cfg = TrainConfig(max_steps=2)
    (tmp_path / "config.json").write_text(json.dumps(resolve(cfg, task).to_dict(cfg)))
    assert validate_file(tmp_path / "config.json") == "harness train record"
    (tmp_path / "t.yaml").write_text("preset: baseline\nmax_steps: 5\n")
    assert validate_file(tmp_path / "t.yaml") == "harness train config"
    (tmp_path / "r.yaml").write_text("noise_levels: [0, 0.5]\nlimit: 3\n")
    assert validate_file(tmp_path / "r.yaml") == "harness run config"
    (tmp_path / "b.yaml").write_text("preset: nope\n")
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        validate_file(tmp_path / "b.yaml")


# ----------------------------------------------------------------------------- a training run re-run from its record
def _eval_rows(run_dir):
    with open(run_dir / "curve.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["accuracy"]]
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


@pytest.mark.integration
def test_train_reruns_from_its_own_config_json(data, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    args = ["train", "--model", "tiny", "--warm-start", "40", "--threads", "1", "--eval-limit", "4",
            "--max-new-tokens", "16", "--max-turns", "2", "-G", "2", "--prompts-per-step", "2", "--max-steps", "2",
            "--eval-every", "2", "--lr", "1e-4", "--no-report"]
    res = runner.invoke(app, [*args, "-o", str(first)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--config", str(first / "config.json"), "-o", str(second)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    a, b = (json.loads((d / "config.json").read_text()) for d in (first, second))
    assert b["train"] == {**a["train"], "output_dir": str(second)} and b["resolved"] == a["resolved"]
    assert _eval_rows(second) == _eval_rows(first) and len(_eval_rows(first)) == 2   # steps 0 and 2, same seed
    # without -o the record's own directory is named, which already holds a run: one clear refusal
    res = runner.invoke(app, ["train", "--config", str(first / "config.json")])
    assert isinstance(res.exception, ConfigError) and "already holds a training run" in str(res.exception)


class _Flat(BaseModel):
    a: int = 1


@pytest.mark.unit
def test_reserved_parameter_names_are_refused():
    Bad = create_model("Bad", __base__=_Flat, config=(str, "x"))
    with pytest.raises(TypeError, match="config"):
        config_command(Bad, print, section="x", name="x", doc="")


def test_run_and_train_name_the_same_things_the_same_way_and_old_spellings_still_work(tmp_path):
    """eval_limit and *_noise_modes in both commands; limit, train_noise_mode, eval_noise_mode are aliases
    (files, the command line, and --resume of a run recorded under the old names)."""
    from harness.core.options import aliases
    from harness.core.rundir import check_resume

    assert aliases(RunConfig) == {"limit": "eval_limit"}
    assert aliases(TrainConfig) == {"train_noise_mode": "train_noise_modes", "eval_noise_mode": "eval_noise_modes"}
    assert RunConfig(limit=8).eval_limit == _go(RunConfig, "--limit", "8").eval_limit == 8
    assert _go(RunConfig, "--eval-limit", "8").model_dump()["eval_limit"] == 8
    t = _go(TrainConfig, "--train-noise-mode", "drop_gold,random", "--eval-limit", "4")
    assert t.train_noise_modes == ["drop_gold", "random"] and "train_noise_mode" not in t.model_dump()
    (tmp_path / "config.json").write_text(json.dumps({"run": {**RunConfig().model_dump(exclude={"eval_limit"}),
                                                             "limit": 4}}))
    check_resume(tmp_path, "run", RunConfig(limit=4).model_dump(), RunConfig.RESUME_FREE - {"eval_limit"},
                 holds_results=True, model=RunConfig)   # the old record's limit is the new eval_limit
