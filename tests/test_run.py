"""End to end: `harness run` through the CLI on the real data (reference policies and the tiny model)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.app import app
from harness.core.record import SCHEMA_VERSION, read_record
from harness.core.results import read_jsonl

pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

#: Correct answers of the scripted policies on the paper's 32 test questions (BM25, k=3, seed 0, drop_gold).
#: They depend only on the pinned data files, the retriever and the reader: a change here is a behaviour change.
SCRIPTED_CORRECT = {("closed-book", "noise=0"): 0, ("one-search", "noise=0"): 15, ("one-search", "noise=0.5"): 6,
                    ("oracle-retry", "noise=0"): 15, ("oracle-retry", "noise=0.5"): 15}


def _git(*args):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def invoke(*args):
    res = runner.invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    invoke("run", "--task", "apollo3", "--noise", "0,0.5", "-o", str(out), "--no-report")
    return out


def test_reference_policies_differ_as_they_must(reference_run):
    rec = read_record(reference_run)  # the record validates against its model
    assert rec.schema_version == SCHEMA_VERSION and rec.kind == "eval" and rec.interval == "wilson"
    res = json.loads((reference_run / "results.json").read_text())
    r = res["results"]
    assert set(r) == {"closed-book", "one-search", "oracle-retry"}  # micro belongs to apollo3_micro
    assert res["micro_scale"] is False
    one, orc = r["one-search"]["noise=0.5"], r["oracle-retry"]["noise=0.5"]
    assert all(m["n"] == 32 for p in r.values() for m in p.values())
    assert orc["persistence"] > one["persistence"] == 0.0
    assert orc["recovery"] > one["recovery"]
    assert orc["any_search_gold"] > one["any_search_gold"]
    assert r["closed-book"]["noise=0"]["accuracy"] == 0.0
    # with no noise the oracle's first search is one-search's search
    assert r["oracle-retry"]["noise=0"]["first_search_gold"] == r["one-search"]["noise=0"]["first_search_gold"]
    assert r["one-search"]["noise=0.5"]["accuracy"] < r["one-search"]["noise=0"]["accuracy"]
    rows = read_jsonl(reference_run / "samples.jsonl")
    assert len(rows) == 3 * 2 * 32
    for (policy, noise), n_correct in SCRIPTED_CORRECT.items():
        assert r[policy][noise]["accuracy"] == n_correct / 32, (policy, noise)
    # results.json agrees with the episodes it summarises
    for policy, by_noise in r.items():
        for key, m in by_noise.items():
            eps = [x for x in rows if x["policy"] == policy and f"noise={x['noise_level']:g}" == key]
            assert m["accuracy"] == sum(x["correct"] for x in eps) / len(eps)
    assert res["versions"]["python"] == sys.version.split()[0]


def test_git_hash_is_the_checkout_commit(reference_run):
    res = json.loads((reference_run / "results.json").read_text())
    head = _git("rev-parse", "HEAD")
    if head.returncode != 0:   # an installed copy outside a git checkout records no commit
        assert res["git_hash"] is None
        return
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    assert res["git_hash"] == head.stdout.strip() + ("-dirty" if dirty else "")


def test_same_seed_same_metrics(reference_run, tmp_path):
    invoke("run", "--noise", "0,0.5", "-o", str(tmp_path / "again"), "--no-report")
    a = json.loads((reference_run / "results.json").read_text())["results"]
    b = json.loads((tmp_path / "again" / "results.json").read_text())["results"]
    assert a == b


def test_resume_after_kill_gives_identical_results(data, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    args = ["run", "--model", "oracle-retry", "--noise", "0.5", "--noise-mode", "drop_gold,random", "--no-report"]
    invoke(*args, "-o", str(full))
    invoke(*args, "-o", str(part))
    lines = (part / "samples.jsonl").read_text().splitlines()
    (part / "samples.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:50])   # killed mid-write
    (part / "results.json").unlink()
    bad = runner.invoke(app, [*args, "-o", str(part)])
    assert bad.exit_code != 0 and "--resume" in str(bad.exception or bad.output)
    invoke(*args, "-o", str(part), "--resume")
    a = json.loads((full / "results.json").read_text())["results"]
    b = json.loads((part / "results.json").read_text())["results"]
    assert a == b


def test_tiny_model_end_to_end(data, tmp_path):
    out = tmp_path / "tiny"
    invoke("run", "--model", "tiny", "--limit", "4", "--max-new-tokens", "24", "--max-turns", "3", "-o", str(out))
    res = json.loads((out / "results.json").read_text())
    assert res["model"] == [{"backend": "hf", "model": "tiny"}]
    m = res["results"]["tiny"]["noise=0"]
    rows = read_jsonl(out / "samples.jsonl")
    assert m["n"] == len(rows) == 4
    assert m["accuracy"] == sum(r["correct"] for r in rows) / 4
    assert m["answer_rate"] == sum(r["answer"] is not None for r in rows) / 4
    assert all(r["turns"] and r["end_reason"] in ("answer", "no_action", "max_turns", "token_budget") for r in rows)
    assert all(0 < t["n_tokens"] <= 24 for r in rows for t in r["turns"])
    assert (out / "report.html").is_file()


def test_help_imports_nothing_heavy():
    code = ("import sys; from typer.testing import CliRunner; from harness.cli.app import app; "
            "r = CliRunner().invoke(app, ['run', '--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'vllm', 'faiss', 'bm25s') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_options_give_clear_errors(data, tmp_path):
    res = runner.invoke(app, ["run", "--model", "one-search", "--noise-mode", "blur", "-o", str(tmp_path / "x")])
    assert res.exit_code != 0 and "blur" in str(res.exception)
    res = runner.invoke(app, ["run", "--backend", "nope", "--model", "x", "-o", str(tmp_path / "y")])
    assert res.exit_code != 0 and "scripted, hf, vllm, lm-eval" in str(res.exception)


def test_llm_judge_verdicts_and_agreement_are_stored(data, tmp_path):
    out = tmp_path / "llmj"
    invoke("run", "--model", "one-search", "--limit", "3", "--llm-judge", "tiny", "--no-report", "-o", str(out))
    rows = read_jsonl(out / "samples.jsonl")
    assert all("llm" in r["judge"] and "raw" in r["judge"]["llm"] for r in rows)
    m = json.loads((out / "results.json").read_text())["results"]["one-search"]["noise=0"]
    assert {"llm_accuracy", "judge_agreement", "llm_unparsed"} <= set(m)
    # unparsed replies (a random tiny model rarely writes Yes/No) are counted, never taken as "No"
    answered = [r for r in rows if r["answer"] is not None]
    verdicts = [r["judge"]["llm"]["verdict"] for r in answered]
    assert answered and m["llm_unparsed"] == sum(v is None for v in verdicts)
    parsed = [(r["correct"], v) for r, v in zip(answered, verdicts) if v is not None]
    expected = sum(a == b for a, b in parsed) / len(parsed) if parsed else None
    assert m["judge_agreement"] == expected
    # kappa and the confusion cells are over the same parsed pairs
    if parsed:
        cells = [m[f"judge_confusion_rule_{a}_llm_{b}"] for a in ("yes", "no") for b in ("yes", "no")]
        assert sum(cells) == len(parsed) and "judge_kappa" in m


def test_cli_errors_exit_2_without_traceback(data, tmp_path):
    for args in (["run", "--noise", "2"], ["run", "--limit", "0"], ["run", "--task", "nope"],
                 ["search", "x", "--retriever", "foo"], ["run", "--reward-weights", "foo=1"]):
        p = subprocess.run([sys.executable, "-m", "harness", *args, "-o", str(tmp_path / "e")] if args[0] == "run"
                           else [sys.executable, "-m", "harness", *args], capture_output=True, text=True)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr and p.stderr.startswith("error: "), (args, p.stderr)


def test_resume_twice_after_torn_write_and_refuse_changed_config(data, tmp_path):
    out = tmp_path / "r"
    args = ["run", "--model", "one-search", "--limit", "6", "--no-report", "-o", str(out)]
    invoke(*args)
    full = json.loads((out / "results.json").read_text())["results"]
    lines = (out / "samples.jsonl").read_text().splitlines()
    (out / "samples.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    invoke(*args, "--resume")
    invoke(*args, "--resume")                           # the torn row was cut, not glued to the next one
    assert len(read_jsonl(out / "samples.jsonl")) == 6
    assert json.loads((out / "results.json").read_text())["results"] == full
    bad = runner.invoke(app, [*args, "--resume", "--seed", "7", "-k", "5"])
    assert bad.exit_code != 0 and "seed: 0 -> 7" in str(bad.exception) and "k: None -> 5" in str(bad.exception)


@pytest.mark.parametrize("semantics", ["rezero", "strict"])
def test_run_reports_its_reward_semantics_and_protocol(data, tmp_path, semantics):
    """A scripted run under each semantics: results.json and the printed table name it."""
    out = tmp_path / semantics
    res = invoke("run", "--model", "oracle-retry", "--noise", "0.5", "--noise-mode", "drop_gold", "--limit", "8",
                 "--reward-semantics", semantics, "--no-report", "-o", str(out))
    saved = json.loads((out / "results.json").read_text())
    assert saved["reward_semantics"] == semantics and saved["protocol"] == {
        "profile": None, "stop_after_action": True, "retriever": "bm25", "model": None}
    assert saved["config"]["reward_semantics"] == semantics
    assert f"rewards: {semantics} semantics, stop_after_action=true" in " ".join(res.output.split())
    m = saved["results"]["oracle-retry"]["noise=0.5"]
    assert all(0.0 <= m[f"reward_{k}"] <= 1.0 for k in ("correctness", "format", "retry", "em_chunk",
                                                         "search_strategy", "search_diversity"))
    assert m["n_reward_errors"] == 0


def test_whole_message_protocol_leaves_one_action_policies_unchanged(data, tmp_path):
    """The scripted policies write one action per turn: keeping whole messages changes no episode."""
    args = ["run", "--model", "oracle-retry", "--noise", "0.5", "--limit", "8", "--no-report"]
    invoke(*args, "-o", str(tmp_path / "stop"))
    invoke(*args, "--no-stop-after-action", "-o", str(tmp_path / "whole"))
    a = json.loads((tmp_path / "stop" / "results.json").read_text())
    b = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert b["protocol"] == {"profile": None, "stop_after_action": False, "retriever": "bm25", "model": None}
    assert a["results"] == b["results"]
