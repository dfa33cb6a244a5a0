"""Small things a newcomer trips on: an interrupted run says how to continue, an unreachable hub fails at once,
``harness search`` marks the gold chunk and documents its options, lm-eval runs are labelled by the model they
load, the docs say where the micro row is, and the project can be cited."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli.app import app

pytestmark = pytest.mark.tier("unit")

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


@pytest.mark.integration
def test_an_interrupted_run_prints_the_command_that_resumes_it(data, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--task", "apollo3_micro", "--model", "micro", "--eval-limit", "12", "--batch-size", "2",
            "--no-report", "-o", str(out)]
    # a child that takes Ctrl-C as a terminal gives it (a background shell would have it ignored)
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    samples = out / "samples.jsonl"
    deadline = time.time() + 900
    while proc.poll() is None and not (samples.is_file() and samples.stat().st_size) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err[-2000:]
    saved = len(samples.read_text().splitlines())
    assert 0 < saved < 12
    episodes = "1 finished episode is" if saved == 1 else f"{saved} finished episodes are"
    assert f"interrupted: {episodes} saved in {out}" in err
    command = re.search(r"continue with: (.+)", err).group(1)
    assert command == shlex.join(["harness", *args[:-2], "--resume", "-o", str(out)])
    resumed = subprocess.run([sys.executable, "-m", "harness", *shlex.split(command)[1:]], capture_output=True,
                             text=True, env=_env(), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(samples.read_text().splitlines()) == 12     # the rest, nothing twice


@pytest.mark.integration
def test_an_unreachable_hub_fails_at_once_without_retries(tmp_path):
    # a port nothing listens on: refused at once, on any machine, online or not
    env = _env(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf"))
    p = subprocess.run([sys.executable, "-m", "harness", "run", "--model", "nobody/not-a-cached-model", "--limit", "1",
                        "-o", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 2
    assert "the Hugging Face hub cannot be reached" in p.stderr and "hf download nobody/not-a-cached-model" in p.stderr
    assert "thrown while requesting" not in p.stderr and "Retrying" not in p.stderr   # no huggingface_hub retries
    assert not (tmp_path / "run").exists()                                           # refused before a directory


def test_a_hub_id_is_probed_and_local_names_are_not():
    from harness.models.hub import looks_like_hub_id, reachable

    assert looks_like_hub_id("Qwen/Qwen2.5-0.5B-Instruct") and not looks_like_hub_id("micro")
    assert not looks_like_hub_id(str(REPO)) and not looks_like_hub_id("./my/model")
    assert reachable("127.0.0.1", 9, timeout=1.0) is False


@pytest.mark.integration
def test_search_marks_the_gold_chunk_of_the_question(data):
    q = next(q for q in data.questions if q.qid == "q0019")
    res = CliRunner().invoke(app, ["search", q.question, "--question-id", "q0019", "-k", "5",
                                   "--data-dir", str(data.root)])
    assert res.exit_code == 0, res.output
    heads = re.findall(r"#\d+ chunk (\S+) score [0-9.]+(.*)", res.output)
    gold = [cid for cid, tag in heads if "[GOLD]" in tag]
    assert gold and set(gold) <= set(q.gold_chunk_ids)
    assert all("[GOLD]" not in tag for cid, tag in heads if cid not in q.gold_chunk_ids)
    assert f"gold chunks of q0019: {', '.join(q.gold_chunk_ids)}; {len(gold)} of them shown" in res.output


def test_every_search_option_says_what_it_does():
    import typer.main

    command = typer.main.get_command(app).commands["search"]
    options = [p for p in command.params if p.param_type_name == "option"]
    assert {"--retriever", "-k", "--noise", "--seed"} <= {p.opts[0] for p in options}
    assert [p.opts[0] for p in options if not (p.help or "").strip()] == []


def test_lmeval_runs_are_labelled_by_the_model_they_load(tmp_path):
    from harness.evaluation.run import EvalRun, RunConfig

    micro = tmp_path / "my-micro"
    micro.mkdir()
    (micro / "harness_build.json").write_text("{}")    # a harness-built (micro-scale) model folder
    a = EvalRun(RunConfig(backend="lm-eval", model="hf", model_args=f"pretrained={micro},device=cpu",
                          output_dir=str(tmp_path / "a")))
    b = EvalRun(RunConfig(backend="lm-eval", model="local-completions", output_dir=str(tmp_path / "b"),
                          model_args="base_url=http://127.0.0.1:9/v1,model=smollm2-135m"))
    assert list(a.labels.values()) == [str(micro)] and a.micro_scale and "micro-scale" in a.title
    assert list(b.labels.values()) == ["smollm2-135m"] and not b.micro_scale
    c = EvalRun(RunConfig(backend="lm-eval", model="hf", model_args="pretrained=org/model"))
    assert "org_model" in str(c.out)                    # the default folder names the model, not "hf"


def test_the_micro_docs_say_which_run_has_a_micro_row():
    from harness.core.config import load_task

    assert "micro" not in load_task("apollo3").reference_policies
    assert "micro" in load_task("apollo3_micro").reference_policies
    doc = (REPO / "docs" / "micro.md").read_text()
    assert "`harness run --task apollo3` (no `--model`) now includes the micro policy" not in doc
    assert "The micro policy is a row of `harness run --task apollo3_micro` (no `--model`)" in doc


def test_the_project_can_be_cited_with_rezero_and_its_data():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "Apache-2.0" and cff["version"] == version
    refs = {r["title"]: r for r in cff["references"]}
    rezero = refs["ReZero: Enhancing LLM search ability by trying one-more-time"]
    assert [(a["given-names"], a["family-names"]) for a in rezero["authors"]] == [("Alan", "Dao"), ("Thinh", "Le")]
    assert {"type": "doi", "value": "10.48550/arXiv.2504.11001"} in rezero["identifiers"]
    assert refs["Apollo 13 Mission Report"]["number"] == "MSC-02680"
    readme = (REPO / "README.md").read_text()
    assert "## Citing" in readme and "eprint        = {2504.11001}" in readme and "MSC-02680" in readme


def test_an_option_of_another_command_is_named_as_such():
    """`harness run --report-to wandb` was answered "did you mean --report" (another option): it is an option of
    harness train, and the error says so; a plain typo still gets click's suggestions."""
    from harness.cli.app import misplaced_option

    assert misplaced_option(["run", "--report-to", "wandb"]) == \
        "harness run has no option --report-to: it is an option of harness train"
    assert misplaced_option(["-v", "run", "--report-to=wandb"]) is not None
    assert misplaced_option(["train", "--report-to", "wandb"]) is None       # its own option
    assert misplaced_option(["run", "--nope"]) is None and misplaced_option(["nosuch", "--report-to"]) is None
    p = subprocess.run([sys.executable, "-m", "harness", "run", "--report-to", "wandb"], capture_output=True,
                       text=True, env=_env(), timeout=300)
    assert p.returncode == 2 and p.stderr.strip() == \
        "error: harness run has no option --report-to: it is an option of harness train"
    assert "--report)" not in p.stderr
