"""Apollo 3 as lm-eval tasks (tasks/apollo3/lm_eval) and lm-eval models behind `harness run`.

Tiers: config checks and scorer units (no data, no model); a scripted lm-eval model through the
real lm-eval evaluator (data, no weights); a tiny random model built into tmp_path, evaluated by
lm-eval and by the harness's HF backend, which must agree sample by sample (data, CPU, seconds);
the `lm_eval` command line itself (slow).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.episode.protocol import action_stops
from harness.evaluation.lmeval_tasks import (
    LMEVAL_TASK_DIR,
    METRICS,
    VARIANTS,
    build_docs,
    extract_answer,
    process_results,
    render_messages,
    score,
    task_config,
)

STOP_STRINGS = action_stops()  # the closing tags of the default (apollo3) tags

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parent.parent
TASKS = [f"apollo3_{v}" for v in VARIANTS]


# ----------------------------------------------------------------------------- configs (no data)


@pytest.mark.unit
@pytest.mark.parametrize("root", [REPO / "tasks" / "apollo3", LMEVAL_TASK_DIR])
def test_include_path_finds_exactly_our_tasks(root):
    """`--include_path tasks/apollo3` also sees the harness's task.yaml; lm-eval must skip it."""
    from lm_eval.tasks._index import Kind, TaskIndex

    index = TaskIndex.build([root])
    assert {n for n, e in index.items() if e.kind == Kind.TASK} == set(TASKS)
    assert index["apollo3"].kind == Kind.TAG and index["apollo3"].tags == set(TASKS)


@pytest.mark.unit
@pytest.mark.parametrize("variant", VARIANTS)
def test_task_yaml_binds_to_harness_hooks(variant):
    import harness.evaluation.lmeval_tasks as hooks

    cfg = task_config(variant)
    assert cfg["task"] == f"apollo3_{variant}" and cfg["output_type"] == "generate_until"
    for key in ("custom_dataset", "process_results"):
        module, _, fn = cfg[key].rpartition(".")
        assert module == "harness.evaluation.lmeval_tasks" and callable(getattr(hooks, fn)), cfg[key]
    assert [m["metric"] for m in cfg["metric_list"]] == list(METRICS)
    gen = cfg["generation_kwargs"]
    assert set(gen["until"]) == set(STOP_STRINGS) and gen["do_sample"] is False and gen["max_gen_toks"] > 0
    assert cfg["metadata"]["version"] >= 1
    doc = {"question": "Q?", "answer": "A", "context": "<information>\n[1] text\n</information>"}
    system, user = render_messages(cfg, doc)
    assert "<answer>" in system["content"] and user["content"].endswith("Question: Q?")
    assert ("<information>" in user["content"]) == (variant != "closedbook")


@pytest.mark.unit
def test_extract_answer_follows_the_agentic_rule():
    assert extract_answer("<think>x</think><answer> 87 psia ") == "87 psia"  # stop cut by lm-eval
    assert extract_answer("<think>x</think><answer>87 psia</answer>") == "87 psia"  # stop kept (HF)
    assert extract_answer("<think>x</think><search>tank pressure") is None
    assert extract_answer("<think>still thinking") is None
    assert extract_answer("") is None


@pytest.mark.unit
def test_scores_come_from_the_judge():
    from harness.scoring.judge import judge

    for reply, gold in [("<answer>1,200 ft</answer>", "1200 feet"), ("<answer>Fra Mauro", "the Fra Mauro highlands"),
                        ("no tags at all", "Fra Mauro")]:
        j = judge(extract_answer(reply), gold)
        assert score(reply, gold) == {"exact_match": float(j.em), "f1": j.f1, "correct": float(j.correct)}
    assert process_results({"answer": "Lunar module"}, ["<answer>the lunar module"]) == \
        {"exact_match": 1.0, "f1": 1.0, "correct": 1.0}


# ----------------------------------------------------------------------------- data


def test_docs_follow_the_paper_split_and_variants(data):
    test_qids = [q.qid for q in data.split("test")]
    closed, gold, rag = (build_docs(c) for c in ("none", "gold", "bm25"))
    for docs in (closed, gold, rag):
        assert [d["qid"] for d in docs["test"]] == test_qids and len(docs["train"]) == 286
    assert all(d["context"] == "" for d in closed["test"])
    assert all(d["gold_in_context"] and d["context"].startswith("<information>") for d in gold["test"])
    assert all(1 <= len(d["context_chunk_ids"]) <= 3 for d in rag["test"])  # BM25 drops zero-score hits
    assert sum(len(d["context_chunk_ids"]) == 3 for d in rag["test"]) >= 30
    q = data.split("test")[0]
    assert data.corpus.text(q.gold_chunk_ids[0]) in gold["test"][0]["context"]


def _lmeval(model, tasks, **kw):
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(REPO / "tasks" / "apollo3"), include_defaults=False)
    return lm_eval.simple_evaluate(model=model, tasks=tasks, task_manager=tm, batch_size=1, bootstrap_iters=0,
                                   log_samples=True, **kw)


def test_lmeval_pipeline_with_a_scripted_model(data):
    """A model that knows the even questions' answers: lm-eval must report exactly that, per task."""
    from lm_eval.api.model import LM

    gold = {q.question: q.answer for q in data.split("test")}
    order = [q.question for q in data.split("test")]

    class Scripted(LM):
        def generate_until(self, requests, disable_tqdm=False):
            out = []
            for r in requests:
                ctx, gen = r.args
                assert set(gen["until"]) == set(STOP_STRINGS)
                question = re.search(r"Question: (.*)$", ctx, re.S).group(1).strip()
                known = order.index(question) % 2 == 0
                out.append(f"<think>I read it.</think><answer>{gold[question]}" if known else "<think>no idea</think>")
            return out

        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    res = _lmeval(Scripted(), TASKS, limit=5)
    for t in TASKS:
        r = res["results"][t]
        assert (r["exact_match,none"], r["correct,none"], r["f1,none"]) == (0.6, 0.6, 0.6), (t, r)
        assert len(res["samples"][t]) == 5


# ----------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def tiny(data, tmp_path_factory):
    """The tiny model with untied embeddings: with tied ones a random init only repeats '\\n',
    which would make the lm-eval/harness comparison below trivially equal."""
    from harness.models.tiny import build_tiny

    return build_tiny(data.corpus, tmp_path_factory.mktemp("tiny") / "model",
                      config_overrides={"tie_word_embeddings": False})


def test_lmeval_matches_harness_single_shot(tiny):
    """lm_eval --apply_chat_template and the harness's HF backend: same prompts, replies and scores."""
    from harness.evaluation.lmeval_tasks import run_single_shot

    n, toks = 4, 12
    res = _lmeval("hf", TASKS, model_args=f"pretrained={tiny}", device="cpu", apply_chat_template=True,
                  limit=n, gen_kwargs={"max_gen_toks": toks})
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    for v, t in zip(VARIANTS, TASKS):
        ours = run_single_shot(str(tiny), v, limit=n, max_gen_toks=toks)
        theirs = sorted(res["samples"][t], key=lambda s: s["doc_id"])
        assert [s["qid"] for s in ours["samples"]] == [s["doc"]["qid"] for s in theirs]
        for a, b in zip(ours["samples"], theirs):
            prompt = tok.apply_chat_template(a["prompt"], tokenize=False, add_generation_prompt=True)
            assert prompt == b["arguments"][0][0]  # (context, gen_kwargs) of the one request
            assert a["reply"] == b["resps"][0][0]
        for m in METRICS:
            assert round(ours["metrics"][m], 6) == round(res["results"][t][f"{m},none"], 6), (t, m)


def _run(*args):
    from typer.testing import CliRunner

    from harness.cli.app import app

    res = CliRunner().invoke(app, ["run", *args, "--no-report"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_harness_run_through_lmeval_backend_matches_hf_backend(tiny, tmp_path):
    """The agentic loop driven by lm-eval's `hf` model writes the same turns as the `hf` backend."""
    from harness.core.results import read_jsonl

    common = ["--limit", "3", "--max-new-tokens", "16", "--max-turns", "2"]
    _run("--backend", "lm-eval", "--model", "hf", "--model-args", f"pretrained={tiny},device=cpu",
         *common, "-o", str(tmp_path / "lmeval"))
    _run("--backend", "hf", "--model", str(tiny), *common, "-o", str(tmp_path / "hf"))
    a, b = (list(read_jsonl(tmp_path / d / "samples.jsonl")) for d in ("lmeval", "hf"))
    assert len(a) == 3 and [e["qid"] for e in a] == [e["qid"] for e in b]
    assert [[t["text"] for t in e["turns"]] for e in a] == [[t["text"] for t in e["turns"]] for e in b]
    res = json.loads((tmp_path / "lmeval" / "results.json").read_text())
    # labelled by the model lm-eval's hf type loads, not by the type: two such runs do not collide in a report
    assert res["model"] == [{"backend": "lm-eval", "model": str(tiny)}] and list(res["results"]) == [str(tiny)]
    assert res["micro_scale"] is True


def test_harness_lmeval_command(tiny, tmp_path):
    from typer.testing import CliRunner

    from harness.cli.app import app

    out = tmp_path / "single.json"
    res = CliRunner().invoke(app, ["lmeval", "-m", str(tiny), "--variants", "goldcontext,rag", "--limit", "2",
                                   "--max-gen-toks", "4", "-o", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "apollo3_goldcontext" in res.output and "apollo3_rag" in res.output
    runs = json.loads(out.read_text())["runs"]
    assert [r["n"] for r in runs] == [2, 2] and set(runs[0]["metrics"]) == set(METRICS)


def test_lmeval_backend_runs_on_cpu_without_device_arg(tiny):
    import torch

    if torch.cuda.is_available():
        pytest.skip("only meaningful without CUDA")
    from harness.policies.lmeval import LMEvalPolicy

    LMEvalPolicy("hf", f"pretrained={tiny}")


def test_protocol_tags_survive_lmeval_decoding(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    text = "<think>x</think><answer>42</answer>"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True) == text


def test_lmeval_backend_agrees_with_hf_backend_on_the_micro_policy(data, tmp_path):
    """Issue 15: lm-eval decodes with skip_special_tokens=True; the micro policy's tags must survive it, so
    `--backend lm-eval` scores the micro policy as `--model micro` (hf backend) does, episode by episode."""
    from harness.core.results import read_jsonl
    from harness.models.micro import SHIPPED

    common = ["--task", "apollo3_micro", "--limit", "6", "--noise", "0"]
    _run("--model", "micro", *common, "-o", str(tmp_path / "hf"))
    _run("--backend", "lm-eval", "--model", "hf", "--model-args", f"pretrained={SHIPPED},device=cpu", *common,
         "-o", str(tmp_path / "lmeval"))
    hf, lme = (list(read_jsonl(tmp_path / d / "samples.jsonl")) for d in ("hf", "lmeval"))
    assert len(hf) == len(lme) == 6 and [e["qid"] for e in hf] == [e["qid"] for e in lme]
    assert [[t["text"] for t in e["turns"]] for e in lme] == [[t["text"] for t in e["turns"]] for e in hf]
    assert all("<answer>" in e["turns"][-1]["text"] for e in lme)
    acc = {d: json.loads((tmp_path / d / "results.json").read_text())["results"] for d in ("hf", "lmeval")}
    # the lm-eval run is labelled by the model its hf type loads (the micro policy's folder), not by "hf"
    assert acc["hf"]["micro"]["noise=0"]["accuracy"] == acc["lmeval"][str(SHIPPED)]["noise=0"]["accuracy"] == 1.0


# ----------------------------------------------------------------------------- the lm_eval command


@pytest.mark.slow
def test_lm_eval_command_line(tiny, tmp_path):
    env = {**os.environ, "HARNESS_DATA_DIR": os.environ["HARNESS_DATA_DIR"]}
    cmd = [sys.executable, "-m", "lm_eval", "--include_path", "tasks/apollo3", "--tasks", ",".join(TASKS),
           "--model", "hf", "--model_args", f"pretrained={tiny}", "--apply_chat_template",
           "--gen_kwargs", "max_gen_toks=8", "--limit", "2", "--output_path", str(tmp_path)]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]
    assert set(results) == set(TASKS) and all("correct,none" in results[t] for t in TASKS)
