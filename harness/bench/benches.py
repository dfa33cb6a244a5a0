"""Shipped benchmarks (``harness bench ...``): figures as per-unit costs and ratios, machine described.

Nothing here asserts a speed; tests never time anything. Cold/warm starts run in fresh
subprocesses so import and cache effects are real.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.core.results import machine_info, package_versions


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, repeats: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def _subprocess_seconds(code: str, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - t


def bench_retrieval(task: str = "apollo3", data_dir=None, repeats: int = 20) -> dict:
    from harness.core.config import load_task
    from harness.data.loading import load_task_data
    from harness.data.retrieval import BM25Retriever, DenseRetriever

    t = load_task(task)
    d = load_task_data(t, data_dir)
    queries = [q.question for q in d.questions]
    out: dict = {"machine": machine_info(), "versions": package_versions(), "n_queries": len(queries), "k": 3}

    build = _timed(lambda: BM25Retriever(d.corpus), repeats=3)
    bm = BM25Retriever(d.corpus)
    batched = _timed(lambda: bm.search(queries, 3), repeats=repeats)
    single = _timed(lambda: [bm.search([q], 3) for q in queries[:64]], repeats=2)
    out["bm25"] = {"index_build_s": build, "batched_qps": len(queries) / batched, "single_qps": 64 / single}

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "HARNESS_CACHE_DIR": cache}
        if data_dir:
            env["HARNESS_DATA_DIR"] = str(data_dir)
        code = ("from harness.core.config import load_task; from harness.data.loading import load_task_data; "
                "from harness.data.retrieval import DenseRetriever; t=load_task(%r); "
                "DenseRetriever(load_task_data(t).corpus, t.retrieval.dense_model)" % task)
        cold = _subprocess_seconds(code, env)   # encodes the corpus and writes the cache
        warm = _subprocess_seconds(code, env)   # loads the cached index
        base = _subprocess_seconds("import torch, sentence_transformers, faiss", env)
    dense = DenseRetriever(d.corpus, t.retrieval.dense_model)
    t0 = time.perf_counter()
    DenseRetriever(d.corpus, t.retrieval.dense_model)
    warm_in_process = time.perf_counter() - t0
    batched = _timed(lambda: dense.search(queries, 3), repeats=max(1, repeats // 10))
    single = _timed(lambda: [dense.search([q], 3) for q in queries[:64]], repeats=1)
    out["dense"] = {
        "model": t.retrieval.dense_model,
        "cold_start_s": cold, "warm_start_s": warm, "import_only_s": base,
        "warm_start_minus_imports_s": warm - base, "warm_start_in_process_s": warm_in_process,
        "batched_qps": len(queries) / batched, "single_qps": 64 / single,
    }
    out["peak_rss_mb"] = _rss_mb()
    return out


def bench_env(task: str = "apollo3", data_dir=None, model: str | None = "tiny", limit: int = 32) -> dict:
    """Environment-only throughput with scripted policies, and the non-generate share with an hf model."""
    from harness.core.config import NoiseConfig, load_task
    from harness.data.loading import load_task_data
    from harness.environment.env import Environment
    from harness.policies import load_policy
    from harness.scoring.rewards import score_episode

    t = load_task(task)
    d = load_task_data(t, data_dir)
    qs = d.split("all")
    out: dict = {"machine": machine_info(), "versions": package_versions(), "scripted": {}}
    base_env = Environment.from_task(t, d)
    for name in ("one-search", "oracle-retry"):
        for level in (0.0, 0.5):
            env = Environment.from_task(t, d, noise=NoiseConfig(level=level, modes=("drop_gold",)),
                                        retriever=base_env.tool.retriever)
            pol = load_policy("scripted", name, max_turns=t.protocol.max_turns)
            t0 = time.perf_counter()
            eps = env.rollout(pol, qs)
            for ep in eps:
                ep.rewards = score_episode(ep, t.rewards.weights)
            wall = time.perf_counter() - t0
            turns = sum(len(e.turns) for e in eps)
            out["scripted"][f"{name}@{level:g}"] = {
                "episodes": len(eps), "episodes_per_s": len(eps) / wall, "turns": turns,
                "ms_per_turn_outside_generate": 1000 * (wall - env.timers.generate_s) / max(turns, 1),
            }
    out["rss_after_scripted_mb"] = _rss_mb()
    if model:
        env = Environment.from_task(t, d, retriever=base_env.tool.retriever)
        env.max_new_tokens = 64
        pol = load_policy("hf", model, corpus=d.corpus)
        t0 = time.perf_counter()
        eps = env.rollout(pol, d.split("test")[:limit])
        for ep in eps:
            ep.rewards = score_episode(ep, t.rewards.weights)
        wall = time.perf_counter() - t0
        out["hf"] = {"model": model, "episodes": len(eps), "wall_s": wall, "generate_s": env.timers.generate_s,
                     "fraction_outside_generate": (wall - env.timers.generate_s) / wall,
                     "mean_generated_tokens": sum(e.n_generated_tokens for e in eps) / len(eps)}
    out["peak_rss_mb"] = _rss_mb()
    return out


def bench_sweep(ablation: str, overrides: dict, n_trials: int, output_dir: str) -> dict:
    """Compute saved by pruning + collapse early-stop: the same micro-sweep with and without them.

    Both arms use the same sampler seed, so they propose the same configurations in the same order
    (for TPE only until the pruned arm's history diverges). Reported: training steps run, wall time,
    best objective and best parameters of each arm, and the steps ratio.
    """
    import yaml

    from harness.core.config import read_yaml
    from harness.sweep.ablation import ablation_path, load_ablation
    from harness.sweep.runner import run_sweep

    ab = load_ablation(ablation)
    out: dict = {"machine": machine_info(), "ablation": ab.name, "n_trials": n_trials, "overrides": overrides}
    for arm, pruned in (("full", False), ("pruned", True)):
        cfg = read_yaml(Path(ablation_path(ablation)))
        if not pruned:
            cfg["pruner"] = {"name": "none"}
            cfg["collapse_stop"] = {"enabled": False}
        path = Path(output_dir) / f"{ab.name}-{arm}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        summary = run_sweep(str(path), n_trials=n_trials, output_dir=str(Path(output_dir) / arm), overrides=overrides)
        best = summary["best"][0] if summary["best"] else {}
        out[arm] = {"steps_run": summary["steps_run"], "wall_s": time.perf_counter() - t0,
                    "states": summary["states"], "best_value": best.get("values"), "best_params": best.get("params")}
    if out["full"]["steps_run"]:
        out["steps_ratio_pruned_over_full"] = out["pruned"]["steps_run"] / out["full"]["steps_run"]
    out["same_best_params"] = out["full"]["best_params"] == out["pruned"]["best_params"]
    return out
