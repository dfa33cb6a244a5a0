"""``--backend openai`` against a real llama.cpp server on 127.0.0.1 (SmolLM2-135M-Instruct, Q4_1 GGUF).

The server is ``python -m llama_cpp.server`` from the ``llama-cpp-python[server]`` package (``.ci/run``
builds it); nothing here is a stand-in. Checked: a run, its usage and request counts; a re-run and a
killed run served from the cache; ``--no-cache``; two concurrent runs sharing one cache; the API key
never written; a dead server, a URL that is no API and an unserved model refused in one line with
nothing left behind; retries across a server that comes up late and one that dies mid-request; the LLM
judge through the server; ``n`` identical sampled requests; and (slow) the same questions through the
in-process Hugging Face backend on the de-quantised weights, compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.core.record import read_record
from harness.core.results import read_jsonl
from tests.servers import MODEL_ALIAS, LlamaServer, free_port, llama_server_missing

pytestmark = pytest.mark.tier("integration")

#: Small enough for CI on two cores: 3 questions, at most 2 turns of 40 tokens.
SMALL = ["--limit", "3", "--max-turns", "2", "--max-new-tokens", "40"]
SECRET = "sk-harness-test-7f3a9c1e-DO-NOT-WRITE"


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    why = llama_server_missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the llama.cpp server tests: {why}")
        pytest.skip(why)
    server = LlamaServer(tmp_path_factory.mktemp("llama") / "server.log").start()
    yield server
    server.stop()


def harness(*args, env=None, check=True, timeout=600):
    """``python -m harness ARGS`` in a subprocess (the real command line, its exit code and output)."""
    p = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def api_run(llama, out: Path, cache: Path, *extra, key: str = SECRET, check=True, report=False):
    env = {"HARNESS_CACHE_DIR": str(cache), "OPENAI_API_KEY": key}
    return harness("run", "--backend", "openai", "--base-url", llama.base_url, "--model", MODEL_ALIAS, *SMALL,
                   "--report" if report else "--no-report", "-o", str(out), *extra, env=env, check=check)


def _texts(run: Path) -> dict[str, list[str]]:
    return {r["qid"]: [t["text"] for t in r["turns"]] for r in read_jsonl(run / "samples.jsonl")}


def _files_holding(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_run_records_usage_resumes_from_cache_and_never_writes_the_key(llama, data, tmp_path):
    cache = tmp_path / "cache"
    first = api_run(llama, tmp_path / "a", cache, report=True)
    assert (tmp_path / "a" / "report.html").is_file()
    rec = read_record(tmp_path / "a")
    assert rec.status == "complete" and rec.model[0].backend == "openai"
    m = rec.metrics(MODEL_ALIAS)
    assert m["n"] == 3 and 0.0 <= m["format_validity"] <= 1.0
    usage = rec.usage[MODEL_ALIAS]
    rows = read_jsonl(tmp_path / "a" / "samples.jsonl")
    turns = sum(len(r["turns"]) for r in rows)
    # one request per turn, each billed: the server's token counts, summed per episode and per run
    assert usage["requests"] == turns and usage["cached"] == 0 and usage["episodes"] == 3
    assert usage["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in rows) > 0
    assert usage["this_process"]["requests"] == turns == usage["this_process"]["responses"]
    assert usage["this_process"]["cache_hits"] == 0
    assert all(r["usage"]["completion_tokens"] == sum(t["n_tokens"] for t in r["turns"]) for r in rows)
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())["run"]
    assert cfg["base_url"] == llama.base_url and cfg["api_key_env"] == "OPENAI_API_KEY"

    # the same evaluation again: every response from the cache, nothing sent, the same episodes
    t0 = time.perf_counter()
    again = api_run(llama, tmp_path / "b", cache)
    rerun_s = time.perf_counter() - t0
    rec_b = read_record(tmp_path / "b")
    assert rec_b.usage[MODEL_ALIAS]["this_process"]["requests"] == 0
    assert rec_b.usage[MODEL_ALIAS]["this_process"]["cache_hits"] == turns
    assert rec_b.usage[MODEL_ALIAS]["cached"] == turns
    assert _texts(tmp_path / "b") == _texts(tmp_path / "a")
    assert rec_b.metrics(MODEL_ALIAS)["accuracy"] == m["accuracy"]
    print(f"\nfirst run {rec.timing['wall_s']:.1f} s ({turns} requests); cached re-run {rerun_s:.1f} s wall "
          f"(process), run {rec_b.timing['wall_s']:.2f} s")

    # the key is sent, never written: not in the run directories (config, record, samples, report), the cache,
    # nor anything printed
    for root in (tmp_path / "a", tmp_path / "b", cache):
        assert _files_holding(root, SECRET) == []
    assert SECRET not in first.stdout + first.stderr + again.stdout + again.stderr


def test_no_cache_sends_everything_and_writes_nothing(llama, data, tmp_path):
    cache = tmp_path / "cache"
    api_run(llama, tmp_path / "a", cache, "--no-cache", "--limit", "1")
    rec = read_record(tmp_path / "a")
    sent = rec.usage[MODEL_ALIAS]["this_process"]
    assert sent["requests"] == sent["responses"] >= 1 and sent["cache_hits"] == 0
    assert not cache.exists() or not list(cache.rglob("*.json"))


def test_a_killed_run_resends_nothing_it_already_has(llama, data, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "harness", "run", "--backend", "openai", "--base-url", llama.base_url, "--model",
           MODEL_ALIAS, "--limit", "4", "--max-turns", "2", "--max-new-tokens", "40", "--no-report",
           "--concurrency", "1", "-o", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(cache.rglob("*.json"))) < 2:
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    have = len(list(cache.rglob("*.json")))
    assert have >= 2
    for entry in cache.rglob("*.json"):            # every entry whole: written atomically
        assert json.loads(entry.read_text())["response"]["choices"]
    p = subprocess.run([*cmd[:-2], "-o", str(tmp_path / "again")], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    sent = read_record(tmp_path / "again").usage[MODEL_ALIAS]["this_process"]
    assert sent["cache_hits"] >= have and sent["requests"] == sent["responses"]
    assert sent["cache_hits"] + sent["responses"] == len(list(cache.rglob("*.json")))


def test_two_concurrent_runs_share_one_cache(llama, data, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache)}
    cmds = [[sys.executable, "-m", "harness", "run", "--backend", "openai", "--base-url", llama.base_url, "--model",
             MODEL_ALIAS, *SMALL, "--no-report", "--limit", "2", "-o", str(tmp_path / name)] for name in ("x", "y")]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert _texts(tmp_path / "x") == _texts(tmp_path / "y")
    entries = list(cache.rglob("*.json"))
    turns = sum(len(r["turns"]) for r in read_jsonl(tmp_path / "x" / "samples.jsonl"))
    assert len(entries) == turns                     # one entry per distinct request, each whole
    assert all(json.loads(e.read_text())["key"] == e.stem for e in entries)
    assert not list(cache.rglob("*.tmp"))


def test_dead_wrong_or_unserved_is_one_line_and_leaves_nothing(llama, data, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    cases = {
        "dead": (["--base-url", dead], [dead, "cannot reach", "connection failed"]),
        "not an API": (["--base-url", llama.base_url[: -len("/v1")] + "/nope"], ["/nope/models", "404",
                                                                                "OpenAI-compatible"]),
        "unserved model": (["--base-url", llama.base_url, "--model", "gpt-9"], [llama.base_url, "'gpt-9'",
                                                                             MODEL_ALIAS]),
    }
    for name, (args, needles) in cases.items():
        out = tmp_path / name.replace(" ", "_")
        p = harness("run", "--backend", "openai", "--model", MODEL_ALIAS, *SMALL, "--no-report", "--max-retries", "1",
                    "--request-timeout", "5", *args, "-o", str(out), check=False, env={"OPENAI_API_KEY": SECRET})
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, p.stderr)
        assert all(n in lines[0] for n in needles), (name, lines[0])
        assert "Traceback" not in p.stderr and SECRET not in p.stderr
        assert not out.exists(), name                 # the directory this run created is gone


def test_retries_a_server_that_comes_up_late_and_one_that_dies(llama, data, tmp_path):
    from harness.data.loading import Question
    from harness.episode.record import Episode
    from harness.policies.openai_api import OpenAIPolicy

    q = Question("q", 0, "Who flew Apollo 13?", "Lovell", (), ())
    ep = Episode(q, [{"role": "user", "content": "Say hello."}])
    late = LlamaServer(tmp_path / "late.log")
    pol = OpenAIPolicy(MODEL_ALIAS, late.base_url, check=False, max_retries=8, backoff=0.5, cache=False, timeout=60)
    starter = threading.Timer(1.0, late.start, kwargs={"wait": False})
    starter.start()
    try:
        gen = pol.generate([ep], 8)[0]           # refused connections first, then the server answers
    finally:
        starter.join()
        late.stop()
    assert gen.text and pol.stats.retries >= 1 and pol.stats.responses == 1
    assert any("connection failed" in k for k in pol.stats.errors)

    # a server killed while it answers: the dropped connection is retried on the restarted server (the timeout
    # leaves room for a loaded machine: a request re-sent on timeout queues behind the one still computed)
    flaky = LlamaServer(tmp_path / "flaky.log").start()
    pol = OpenAIPolicy(MODEL_ALIAS, flaky.base_url, check=False, max_retries=8, backoff=0.5, cache=False, timeout=600)
    long = Episode(q, [{"role": "user", "content": "Write a long story about the Moon."}])

    def kill_then_restart():
        time.sleep(0.3)
        flaky.proc.kill()
        flaky.proc.wait()
        flaky.start(wait=False)

    t = threading.Thread(target=kill_then_restart)
    t.start()
    try:
        gen = pol.generate([long], 48)[0]
    finally:
        t.join()
        flaky.stop()
    assert gen.text and pol.stats.retries >= 1 and pol.stats.requests >= 2
    assert any("dropped" in k for k in pol.stats.errors), pol.stats.errors


def test_identical_sampled_requests_share_one_request_with_n_choices(llama, tmp_path):
    from harness.data.loading import Question
    from harness.episode.record import Episode
    from harness.policies.openai_api import OpenAIPolicy

    q = Question("q", 0, "?", "a", (), ())
    eps = [Episode(q, [{"role": "user", "content": "Name a planet."}]) for _ in range(3)]
    pol = OpenAIPolicy(MODEL_ALIAS, llama.base_url, temperature=0.9, seed=5, cache_dir=tmp_path / "c")
    gens = pol.generate(eps, 12)
    assert len(gens) == 3 and all(g.text for g in gens)
    # the server answers n choices, or (llama.cpp ignores n) is asked again one seed on per missing choice
    assert pol.stats.responses in (1, 3)
    assert sum(g.usage.get("requests", 0) for g in gens) == 1  # billed once, to the first episode
    again = OpenAIPolicy(MODEL_ALIAS, llama.base_url, temperature=0.9, seed=5, cache_dir=tmp_path / "c")
    assert [g.text for g in again.generate(eps, 12)] == [g.text for g in gens] and again.stats.requests == 0


def test_llm_judge_through_the_server(llama, data, tmp_path):
    cache = tmp_path / "cache"
    harness("run", "--model", "oracle-retry", "--limit", "3", "--no-report", "--llm-judge", MODEL_ALIAS,
            "--judge-base-url", llama.base_url, "-o", str(tmp_path / "j"), env={"HARNESS_CACHE_DIR": str(cache)})
    rec = read_record(tmp_path / "j")
    m = rec.metrics("oracle-retry")
    assert "llm_accuracy" in m and "judge_agreement" in m and "llm_unparsed" in m
    rows = read_jsonl(tmp_path / "j" / "samples.jsonl")
    answered = [r for r in rows if r["answer"] is not None]
    assert answered and all(isinstance(r["judge"]["llm"]["raw"], str) for r in answered)
    assert rec.usage["llm_judge"]["requests"] == len(answered)
    assert rec.usage["llm_judge"]["this_process"]["responses"] == len(answered)
    assert rec.config["judge_base_url"] == llama.base_url and rec.model[0].backend == "scripted"


@pytest.mark.slow
def test_served_and_in_process_backends_on_the_same_questions(llama, data, tmp_path):
    """The same model (SmolLM2 Q4_1: llama.cpp computes on the quantised weights, transformers on the same
    weights de-quantised to fp32) and the same prompts through both backends; the differences are recorded in
    ``comparison.json`` (they need not match: the arithmetic differs)."""
    from harness.models.gguf import resolve_gguf

    folder = resolve_gguf("smollm2-135m")
    limit = os.environ.get("HARNESS_COMPARE_LIMIT", "8")
    common = ["--limit", limit, "--max-turns", "3", "--max-new-tokens", "64", "--no-report"]
    t0 = time.perf_counter()
    harness("run", "--backend", "openai", "--base-url", llama.base_url, "--model", MODEL_ALIAS, *common,
            "-o", str(tmp_path / "api"), "--no-cache")
    api_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    harness("run", "--backend", "hf", "--model", folder, *common, "-o", str(tmp_path / "hf"), timeout=3600)
    hf_s = time.perf_counter() - t0
    a, h = read_record(tmp_path / "api").metrics(MODEL_ALIAS), read_record(tmp_path / "hf").metrics(folder)
    ta, th = _texts(tmp_path / "api"), _texts(tmp_path / "hf")
    same_first = sum(ta[q][0] == th[q][0] for q in ta)
    keys = ("accuracy", "format_validity", "searches_per_episode", "answer_rate", "mean_turns", "mean_generated_tokens")
    cmp = {"n": a["n"], "server": {k: a[k] for k in keys}, "in_process": {k: h[k] for k in keys},
           "identical_first_turns": same_first, "server_wall_s": api_s, "in_process_wall_s": hf_s,
           "first_turns": {q: {"server": ta[q][0], "in_process": th[q][0]} for q in ta}}
    Path(os.environ.get("HARNESS_COMPARE_OUT", tmp_path / "comparison.json")).write_text(json.dumps(cmp, indent=2))
    assert a["n"] == h["n"] == int(limit) and set(ta) == set(th)
    for k in keys[:3]:
        assert a[k] is not None and h[k] is not None
