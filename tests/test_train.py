"""harness train: config validation, curve/fault units, rollout tensors, CPU smoke run, resume, divergence."""

from __future__ import annotations

import csv
import json
import math

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.core.errors import ConfigError
from harness.train.config import TrainConfig, resolve
from harness.train.curve import CurveWriter, FaultMonitor
from tests.scripted import scripted_run

runner = CliRunner()

#: Small, fast settings shared by the CPU runs (tiny model nudged to the protocol, 1 thread).
FAST = ["--model", "tiny", "--warm-start", "40", "--threads", "1", "--eval-limit", "4", "--max-new-tokens", "24",
        "--max-turns", "3", "-G", "4", "--prompts-per-step", "2", "--no-report"]


def train(*args: str) -> None:
    res = runner.invoke(app, ["train", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def read_curve(run_dir) -> list[dict]:
    with open(run_dir / "curve.csv", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("values, message", [
    ({"preset": "nope"}, "unknown preset"),
    ({"reward_weights": "retry=abc"}, "not a number"),
    ({"reward_weights": "bogus=1"}, "unknown reward"),
    ({"reward_weights": "format=-1"}, ">= 0"),
    ({"reward_weights": "correctness=0,format=0,retry=0,em_chunk=0,search_strategy=0,search_diversity=0"},
     "every reward"),
    ({"learning_rate": -1e-5}, "--learning-rate"),
    ({"train_noise": 1.5}, "noise"),
    ({"train_noise_mode": "sideways"}, "unknown noise mode"),
    ({"eval_split": "validation"}, "unknown eval split"),
    ({"selection_split": "holdout"}, "unknown selection split"),
    ({"eval_samples": 0}, "--eval-samples"),
    ({"lr_scheduler": "zigzag"}, "lr scheduler"),
    ({"num_generations": 1}, "--num-generations"),
    ({"vllm": True}, "not implemented"),
])
def test_malformed_config_is_rejected_before_any_model_loads(values, message, monkeypatch, tmp_path):
    """The whole run (construction, setup, training) is attempted: it must fail on the config, never
    reach the model (the guard below is wired: see test_the_model_guard_fires_on_a_valid_config)."""
    import harness.models.resolve

    monkeypatch.setattr(harness.models.resolve, "resolve_model_path", _model_loaded)
    from harness.train.runner import TrainRun

    with pytest.raises(ConfigError, match=message):
        TrainRun(TrainConfig.build(**values, output_dir=str(tmp_path / "run"))).run()
    assert not (tmp_path / "run").exists()  # nothing written either


class ModelLoaded(Exception):
    pass


def _model_loaded(*args, **kwargs):
    raise ModelLoaded


def test_the_model_guard_fires_on_a_valid_config(data, monkeypatch, tmp_path):
    import harness.models.resolve
    from harness.train.runner import TrainRun

    monkeypatch.setattr(harness.models.resolve, "resolve_model_path", _model_loaded)
    with pytest.raises(ModelLoaded):
        TrainRun(TrainConfig.build(output_dir=str(tmp_path / "run"), threads=1)).run()


def test_cli_reports_a_bad_preset_without_a_traceback():
    res = runner.invoke(app, ["train", "--preset", "nope"])
    assert res.exit_code != 0
    assert isinstance(res.exception, ConfigError) and "rezero" in str(res.exception)


def test_threads_default_to_the_measured_fastest_on_a_shared_cpu():
    """Issue 26: --threads defaulted to torch's (one per core), 5-6x slower per step than 1 on the shared 2-core
    machine (docs/benchmarks.md); 0 still asks for torch's default."""
    from pathlib import Path

    assert TrainConfig().threads == 1 and TrainConfig.build(threads=0).threads == 0
    bench = (Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md").read_text()
    assert "## Torch threads (`harness bench train --threads 1` vs `--threads 2`)" in bench


def test_presets_and_overrides_resolve():
    r = resolve(TrainConfig(preset="baseline", reward_weights="format=0", train_noise=0.5, eval_noise=0.1))
    assert r.weights["retry"] == 0 and r.weights["format"] == 0 and r.weights["correctness"] == 4
    assert (r.train_noise.level, r.eval_noise.level) == (0.5, 0.1)
    assert resolve(TrainConfig()).weights["retry"] == 1.0  # rezero keeps the retry reward


@pytest.mark.parametrize("values, semantics, stop", [
    ({}, "rezero", False),                                                  # the preset's
    ({"reward_semantics": "strict"}, "strict", False),
    ({"stop_after_action": True}, "rezero", True),
    ({"preset": "baseline", "reward_semantics": "strict", "stop_after_action": True}, "strict", True),
])
def test_reward_semantics_and_protocol_resolve(values, semantics, stop):
    r = resolve(TrainConfig(**values))
    assert (r.semantics, r.stop_after_action) == (semantics, stop)
    assert r.to_dict(TrainConfig(**values))["resolved"]["reward_semantics"] == semantics


@pytest.mark.parametrize("spec", ["retry=nan", "retry=inf", "format=-inf"])
def test_non_finite_weights_refused_before_any_model_loads(spec):
    with pytest.raises(ConfigError, match="not a finite number"):
        resolve(TrainConfig(reward_weights=spec))
    with pytest.raises(ValueError):
        TrainConfig(reward_semantics="loose")


# ----------------------------------------------------------------------------- curve and faults
def test_curve_rows_merge_rewrite_and_resume(tmp_path):
    path = tmp_path / "curve.csv"
    c = CurveWriter(path)
    c.upsert(0, {"accuracy": 0.25, "wall_time": 1.0})
    c.upsert(1, {"loss": 0.5, "wall_time": 2.0})
    c.upsert(2, {"loss": 0.4, "wall_time": 3.0})
    c.upsert(2, {"accuracy": 0.5, "persistence": None})
    rows = read_curve(tmp_path)
    assert list(rows[0])[:2] == ["step", "accuracy"] and list(rows[0])[-1] == "wall_time"
    assert [r["accuracy"] for r in rows] == ["0.25", "", "0.5"] and rows[2]["loss"] == "0.4"
    assert c.peak() == {"step": 2, "accuracy": 0.5}
    resumed = CurveWriter.resume(path, up_to_step=1)
    assert [r["step"] for r in resumed.rows] == [0, 1] and resumed.rows[1]["loss"] == 0.5


def test_fault_monitor_state_round_trips():
    m = FaultMonitor(kl_alarm=1.0, patience=3)
    m.check(1, {"kl": 5.0, "frac_reward_zero_std": 1.0})
    m.check(2, {"kl": 5.0, "frac_reward_zero_std": 1.0})
    resumed = FaultMonitor(kl_alarm=1.0, patience=3)
    resumed.load_state_dict(json.loads(json.dumps(m.state_dict())))
    # the KL excursion continues (not reported again) and the third zero-variance step completes the streak
    assert [f["kind"] for f in resumed.check(3, {"kl": 6.0, "frac_reward_zero_std": 1.0})] == ["zero_reward_variance"]


def test_incomplete_checkpoints_are_detected(tmp_path):
    import torch
    from safetensors.torch import save_file

    from harness.train.runner import checkpoint_problems

    ck = tmp_path / "checkpoint-4"
    ck.mkdir()
    save_file({"w": torch.zeros(2)}, str(ck / "model.safetensors"))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({"x": torch.zeros(2)}, ck / name)
    (ck / "trainer_state.json").write_text("{}")
    (ck / "harness_state.json").write_text("{\"step\": ")  # torn write
    assert checkpoint_problems(ck) == ["harness_state.json is not valid JSON"]
    (ck / "harness_state.json").write_text("{}")
    assert checkpoint_problems(ck) == []
    (ck / "optimizer.pt").unlink()
    assert checkpoint_problems(ck) == ["no optimizer.pt"]


def test_fault_monitor():
    m = FaultMonitor(kl_alarm=1.0, patience=3)
    assert m.check(1, {"loss": 0.1, "kl": 0.5, "frac_reward_zero_std": 1.0}) == []
    assert [f["kind"] for f in m.check(2, {"loss": 0.1, "kl": 5.0, "frac_reward_zero_std": 1.0})] == ["kl_explosion"]
    assert [f["kind"] for f in m.check(3, {"loss": 0.1, "kl": 6.0, "frac_reward_zero_std": 1.0})] == \
        ["zero_reward_variance"]  # the KL excursion is reported once
    assert m.check(4, {"loss": 0.1, "kl": 0.1, "frac_reward_zero_std": 0.5}) == []
    assert [f["kind"] for f in m.check(5, {"loss": float("nan")})] == ["non_finite"]


# ----------------------------------------------------------------------------- rollout tensors
@pytest.fixture(scope="module")
def warm_tiny(data, task):
    import torch

    from harness.models.resolve import resolve_model_path
    from harness.train.warmstart import cached_warm_start

    torch.set_num_threads(1)
    return cached_warm_start(resolve_model_path("tiny", data.corpus), task, data, steps=40)  # = FAST's model


def test_rollout_masks_environment_tokens_and_aligns_logprobs(task, data, bm25, warm_tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.environment.env import Environment
    from harness.train.rollout import EpisodeRollout

    tok = AutoTokenizer.from_pretrained(warm_tiny)
    model = AutoModelForCausalLM.from_pretrained(warm_tiny, dtype=torch.float32)
    env = Environment.from_task(task, data, retriever=bm25, max_turns=3)
    env.max_new_tokens = 24
    qs = data.split("train")[:4]
    ro = EpisodeRollout(env, tok, qs, task.presets["rezero"].reward_weights, num_generations=2)
    episodes, traces, _ = ro.run(model, [q for q in qs for _ in range(2)], step=1)
    assert any(len(ep.turns) >= 2 for ep in episodes), "no multi-turn episode: the test would prove nothing"
    for ep, tr in zip(episodes, traces):
        n = len(tr.completion_ids)
        assert len(tr.logprobs) == n == len(tr.env_mask)
        # the completion decodes to the conversation, up to the final end-of-turn closing
        last = max(i for i, m in enumerate(ep.messages) if m["role"] == "assistant")
        full = tok.apply_chat_template(ep.messages[: last + 1], tokenize=False)
        decoded = tok.decode(tr.prompt_ids + tr.completion_ids)
        assert full.startswith(decoded) and len(full) - len(decoded) <= len(tok.eos_token) + 1
        # model spans are exactly the assistant turns; environment spans hold the <information> blocks
        spans, start = [], 0
        for i in range(1, n + 1):
            if i == n or tr.env_mask[i] != tr.env_mask[start]:
                spans.append((tr.env_mask[start], tok.decode(tr.completion_ids[start:i])))
                start = i
        model_text = [t.removesuffix(tok.eos_token) for m, t in spans if m == 1]
        assert model_text == [t.text for t in ep.turns]
        infos = [m["content"] for m in ep.messages[: last + 1] if m["content"].startswith("<information>")]
        env_text = "".join(t for m, t in spans if m == 0)
        assert all(info in env_text for info in infos) and "<information>" not in "".join(model_text)
        assert all(lp == 0.0 for lp, m in zip(tr.logprobs, tr.env_mask) if m == 0)
        # sampling logprobs equal the trainer's recomputation (temperature 1) on model tokens
        ids = torch.tensor([tr.prompt_ids + tr.completion_ids])
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits[0, len(tr.prompt_ids) - 1 : -1].float(), -1)
        ref = lp.gather(-1, torch.tensor(tr.completion_ids)[:, None]).squeeze(-1)
        got = torch.tensor(tr.logprobs)
        mask = torch.tensor(tr.env_mask).bool()
        assert torch.allclose(got[mask], ref[mask], atol=1e-3)


# ----------------------------------------------------------------------------- CPU runs
def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_smoke_run_trains_and_evaluates_at_steps_0_and_5(data, warm_tiny, tmp_path):
    out = tmp_path / "smoke"
    train("--task", "apollo3", *FAST, "--max-steps", "5", "--eval-every", "5", "-o", str(out))
    rows = read_curve(out)
    assert [r["step"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    evals = {r["step"]: r for r in rows if r["accuracy"] != ""}
    assert set(evals) == {"0", "5"}
    for col in ("accuracy_ci_low", "persistence", "retry_rate", "searches_per_episode", "format_validity",
                "answer_rate", "reward_retry_mean", "reward_retry_std", "reward_std", "loss", "kl", "entropy",
                "grad_norm", "learning_rate", "clip_ratio", "completion_length", "wall_time"):
        assert col in rows[0], col
    assert rows[5]["loss"] != "" and rows[0]["loss"] == ""
    from harness.core.record import SCHEMA_VERSION, read_record

    rec = read_record(out)
    assert rec.schema_version == SCHEMA_VERSION and rec.kind == "train" and rec.status == "complete"
    res = json.loads((out / "results.json").read_text())
    assert res["peak"]["step"] in (0, 5) and res["final"]["step"] == 5
    assert len((out / "eval_samples" / "step_00005.jsonl").read_text().splitlines()) == 4
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["resolved"]["reward_weights"]["retry"] == 1.0 and cfg["train"]["max_steps"] == 5
    # the rezero preset trains with ReZero's rewards on whole messages
    assert cfg["resolved"]["reward_semantics"] == "rezero" and cfg["resolved"]["stop_after_action"] is False
    assert res["reward_semantics"] == "rezero" and res["protocol"] == {
        "profile": None, "stop_after_action": False, "retriever": "bm25", "model": None}
    before, after = _weights(warm_tiny), _weights(out / "model")
    changed = [k for k in before if not (before[k] == after[k]).all()]
    assert changed, "no parameter changed after 5 GRPO steps"


def test_strict_semantics_with_the_search_r1_protocol_trains(data, warm_tiny, tmp_path):
    out = tmp_path / "strict"
    train("--task", "apollo3", *FAST, "--max-steps", "2", "--eval-every", "2", "--reward-semantics", "strict",
          "--stop-after-action", "-o", str(out))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["resolved"]["reward_semantics"] == "strict" and cfg["resolved"]["stop_after_action"] is True
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "complete" and res["reward_semantics"] == "strict"
    rows = read_curve(out)
    assert rows[2]["loss"] != "" and all(0 <= float(rows[i]["reward_format_mean"]) <= 1 for i in (1, 2))


def _curves_equal(a_dir, b_dir, steps):
    full, resumed = read_curve(a_dir), read_curve(b_dir)
    assert [r["step"] for r in resumed] == steps
    for a, b in zip(full, resumed):
        a.pop("wall_time"), b.pop("wall_time")
        assert a == b, f"step {a['step']} differs"


def test_resume_reproduces_the_curve(data, warm_tiny, tmp_path, caplog, monkeypatch):
    import shlex
    import sys
    import warnings

    import torch

    args = [*FAST, "--max-steps", "4", "--eval-every", "2", "--save-every", "2"]
    filters, threads = list(warnings.filters), torch.get_num_threads()
    train(*args, "-o", str(tmp_path / "full"))
    assert warnings.filters == filters and torch.get_num_threads() == threads  # the run's filters are scoped
    stopped = [*args, "-o", str(tmp_path / "part"), "--stop-after", "2"]
    monkeypatch.setattr(sys, "argv", ["harness", "train", *stopped])    # what the hint repeats
    res = runner.invoke(app, ["train", *stopped], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    # Issue 26: a stopped run says how to continue it (the same options, without --stop-after)
    hint = shlex.join(["harness", "train", *args, "--resume", "-o", str(tmp_path / "part")])
    assert f"continue with: {hint}" in res.output
    monkeypatch.undo()
    part = json.loads((tmp_path / "part" / "results.json").read_text())
    assert part["status"] == "partial" and (tmp_path / "part" / "checkpoints" / "checkpoint-2").is_dir()
    bad = runner.invoke(app, ["train", *args, "-o", str(tmp_path / "part")])
    assert bad.exit_code != 0 and "--resume" in str(bad.exception)
    changed = runner.invoke(app, ["train", *args, "-o", str(tmp_path / "part"), "--resume", "--lr", "1e-3"])
    assert changed.exit_code != 0 and "learning_rate" in str(changed.exception)
    train(*args, "-o", str(tmp_path / "part"), "--resume")
    _curves_equal(tmp_path / "full", tmp_path / "part", ["0", "1", "2", "3", "4"])
    assert json.loads((tmp_path / "part" / "results.json").read_text())["status"] == "complete"
    assert json.loads((tmp_path / "part" / "checkpoints" / "checkpoint-4" / "harness_state.json").read_text())[
        "step"] == 4

    # Issue 15: a kill while saving checkpoint-4 left it without its optimizer state. --resume falls
    # back to checkpoint-2 (and says so), cuts the curve to step 2 and trains steps 3-4 again.
    (tmp_path / "part" / "checkpoints" / "checkpoint-4" / "optimizer.pt").unlink()
    with caplog.at_level("WARNING"):
        train(*args, "-o", str(tmp_path / "part"), "--resume", "--stop-after", "3", "--max-steps", "4")
    assert "checkpoint-4 is incomplete or unreadable (no optimizer.pt)" in caplog.text
    assert list((tmp_path / "part" / "checkpoints").glob("incomplete-checkpoint-4-*"))
    assert [r["step"] for r in read_curve(tmp_path / "part")] == ["0", "1", "2", "3"]  # cut to 2, then step 3
    train(*args, "-o", str(tmp_path / "part"), "--resume")
    _curves_equal(tmp_path / "full", tmp_path / "part", ["0", "1", "2", "3", "4"])


def test_nan_weights_stop_the_run_as_diverged(data, warm_tiny, tmp_path):
    from transformers import TrainerCallback

    from harness.train.runner import TrainRun

    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            if state.global_step == 1:
                next(model.parameters()).data.fill_(float("nan"))

    cfg = TrainConfig.build(model=str(warm_tiny), threads=1, eval_limit=4, max_new_tokens=16, max_turns=2,
                            num_generations=2, prompts_per_step=1, max_steps=4, eval_every=2, report=False,
                            output_dir=str(tmp_path / "nan"))
    res = TrainRun(cfg, callbacks=[Poison()]).run()
    assert res.status == "diverged"
    assert any(f.kind == "non_finite" for f in res.faults)
    rows = read_curve(tmp_path / "nan")
    assert rows[0]["step"] == "0" and rows[0]["accuracy"] != ""  # the curve is kept
    assert all(math.isfinite(float(r["accuracy"])) for r in rows if r["accuracy"] != "")


def test_bench_train_times_a_real_run(data, warm_tiny, capsys):
    """`harness bench train` (docs/benchmarks.md) read the run's result as a dict and failed with a TypeError
    after the whole run; it reports the threads it ran with (the --threads default is measured with it)."""
    from harness.bench.train import bench_train

    r = bench_train(model=str(warm_tiny), data_dir=data.root, steps=2, num_generations=2, prompts_per_step=1,
                    max_turns=2, max_new_tokens=16, warm_start=0, threads=1, bare_trl=True)
    assert r["status"] == "complete" and r["steps"] == 2 and r["threads"] == 1
    assert r["step_s"] > 0 and r["eval_s_total"] > 0 and set(r["fraction"]) == {"generation", "update", "environment"}
    # the plain TRL step on the same model, prompts and settings ran as many steps, with TRL's one-turn limit
    bare = r["bare_trl"]
    assert bare["steps"] == 2 and bare["step_s"] > 0 and bare["max_completion_length"] == 16
    assert 0 < bare["mean_completion_tokens"] <= 16
    assert r["harness_over_bare_step"] == pytest.approx(r["step_s"] / bare["step_s"])
    # nothing else on stdout: `harness bench train` prints its JSON there (TRL's printer callback is removed)
    assert "{'loss'" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- peak, stopping rules


def _scripted_config(out, **extra):
    return TrainConfig.build(model="tiny", warm_start=40, threads=1, eval_limit=4, max_new_tokens=24, max_turns=3,
                             num_generations=4, prompts_per_step=2, report=False, max_steps=8, eval_every=2,
                             output_dir=str(out), **extra)


@pytest.mark.parametrize("script, extra, status, stop", [
    ({0: 0.5, 2: 0.55, 4: 0.05, 6: 0.0, 8: 0.0}, {"stop_on_collapse": True}, "stopped_collapse", 6),
    ({0: 0.5, 2: 0.5, 4: 0.55, 6: 0.5, 8: 0.5}, {"patience": 2}, "stopped_patience", 4),
])
def test_stopping_rules_keep_the_peak_and_survive_resume(data, warm_tiny, tmp_path, script, extra, status, stop):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    res = scripted_run(script)(_scripted_config(out, **extra)).run()
    assert res.status == status and res.stopping.stop_step == stop
    assert [r["step"] for r in read_curve(out)][-1] == str(stop)  # the run ended at the stop
    assert (out / "checkpoints" / f"checkpoint-{stop}").is_dir()
    peak = json.loads((out / "peak" / "peak.json").read_text())
    best = max(script[s] for s in range(0, stop + 1, 2))
    assert peak["step"] == min(s for s in range(0, stop + 1, 2) if script[s] == best)
    assert peak["accuracy"] == best and peak["n"] == 40 and peak["interval"][0] < best < peak["interval"][1]
    assert peak["seed"] == 0 and peak["eval_noise"]["level"] == 0.0 and peak["micro_scale"] is True
    assert res.peak.step == peak["step"] and res.peak.checkpoint == "peak"
    assert res.micro_scale is True
    weights = load_file(str(out / "peak" / "model.safetensors"))
    assert weights and not any("lora" in k for k in weights)
    assert (out / "peak" / "tokenizer.json").is_file() and (out / "peak" / "config.json").is_file()

    # resumed with the same config: the curve replays to the same decision, nothing is trained
    again = scripted_run(script)(_scripted_config(out, resume=True, **extra)).run()
    assert again.status == status and again.stopping.stop_step == stop
    assert [r["step"] for r in read_curve(out)][-1] == str(stop)


def test_peak_folder_is_a_model_harness_run_evaluates(data, warm_tiny, tmp_path):
    out = tmp_path / "run"
    train(*FAST, "--max-steps", "2", "--eval-every", "2", "-o", str(out))
    peak = json.loads((out / "peak" / "peak.json").read_text())
    res = json.loads((out / "results.json").read_text())
    assert peak["step"] == res["peak"]["step"] and peak["accuracy"] == res["peak"]["accuracy"]
    ev = runner.invoke(app, ["run", "--model", str(out / "peak"), "--limit", "4", "--max-turns", "3",
                             "--max-new-tokens", "24", "--no-report", "-o", str(tmp_path / "eval")],
                       catch_exceptions=False)
    assert ev.exit_code == 0, ev.output
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["micro_scale"] is True  # one micro-scale decision: the peak of a tiny run is micro-scale
    assert evaluated["n-samples"][str(out / "peak")]


@pytest.mark.integration
def test_lora_adapters_are_merged_into_the_peak_model(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.train.peak import merged_copy

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4))
    base.save_pretrained(tmp_path / "base")
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter (B starts at zero)
    ids = torch.randint(0, 64, (2, 7))
    merged = merged_copy(model, str(tmp_path / "base"))
    assert not any("lora" in k for k in merged.state_dict())
    plain = LlamaForCausalLM.from_pretrained(tmp_path / "base")
    with torch.no_grad():
        want, got = model(ids).logits, merged(ids).logits
        assert not torch.allclose(want, plain(ids).logits, atol=1e-3)  # the adapter matters
        assert torch.allclose(want, got, atol=1e-4)
    assert any("lora_B" in n for n, _ in model.named_parameters())  # the training model is untouched


def test_resumed_micro_run_replays_the_same_answer_codes(data, tmp_path):
    """apollo3_micro draws a fresh code per episode from a per-question counter; the counter is checkpointed."""
    args = ["--task", "apollo3_micro", "--model", "micro", "--threads", "1", "--eval-limit", "4", "-G", "2",
            "--prompts-per-step", "2", "--max-turns", "3", "--no-report", "--max-steps", "4", "--eval-every", "2",
            "--save-every", "2", "--lr", "5e-4"]
    train(*args, "-o", str(tmp_path / "full"))
    train(*args, "-o", str(tmp_path / "part"), "--stop-after", "2")
    state = json.loads((tmp_path / "part" / "checkpoints" / "checkpoint-2" / "harness_state.json").read_text())
    assert state["train_env"]["nonce"] and state["eval_env"]["nonce"]
    train(*args, "-o", str(tmp_path / "part"), "--resume")
    _curves_equal(tmp_path / "full", tmp_path / "part", ["0", "1", "2", "3", "4"])
    states = [json.loads((tmp_path / d / "checkpoints" / "checkpoint-4" / "harness_state.json").read_text())
              for d in ("full", "part")]
    assert states[0] == states[1]  # same episode counters in both environments, same fault streaks
    for step in (2, 4):  # the held-out episodes saw the same codes
        codes = [[json.loads(line)["gold_answer"] for line in (tmp_path / d / "eval_samples" /
                                                               f"step_{step:05d}.jsonl").read_text().splitlines()]
                 for d in ("full", "part")]
        assert codes[0] == codes[1]
