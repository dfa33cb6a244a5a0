"""``harness run``: evaluate policies on a task with the search protocol, write a run directory.

    setup     resolve config, load data, build the environment(s) and policy
    run       for each policy and noise level: batched rollouts, rewards, judge; every finished
              episode is appended to samples.jsonl at once (a killed run keeps them; --resume
              skips them)
    evaluate  retry-aware metrics per policy and noise level -> results.json (atomic write)
    cleanup   HTML report, summary table

Run directory::

    config.json     the resolved RunConfig
    samples.jsonl   one episode per line (+ "policy" and "noise_level" keys)
    results.json    schema in harness.core.results.RESULTS_KEYS
    report.html     written by harness.analysis.report
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from harness.core.config import NoiseConfig, TaskConfig, load_task, make_noise, parse_weight_overrides
from harness.core.errors import ConfigError
from harness.core.io import slug
from harness.core.results import (
    SCHEMA_VERSION,
    JsonlAppender,
    clean_nans,
    git_hash,
    machine_info,
    now,
    package_versions,
    read_jsonl,
    write_json,
)
from harness.data.loading import TaskData, load_task_data
from harness.episode.record import Episode
from harness.scoring.metrics import compute_metrics
from harness.scoring.rewards import score_episode

log = logging.getLogger(__name__)

#: What ``harness run`` evaluates when no --model is given: the scripted reference policies, at
#: :data:`DEFAULT_NOISE_LEVELS` (the task's noise modes, drop_gold for apollo3: at 0.5 the retry-aware
#: metrics have something to say), plus the policies trained for that task (:data:`TASK_POLICIES`).
DEFAULT_POLICIES = ("closed-book", "one-search", "oracle-retry")
DEFAULT_NOISE_LEVELS = (0.0, 0.5)
#: Policies trained for one task, evaluated by default on that task only (the micro policy, built by
#: ``harness micro build``, is trained on apollo3_micro and scores 0 anywhere else).
TASK_POLICIES = {"apollo3_micro": ("micro",)}
#: Model names that are micro-scale by construction (built by the harness on CPU).
MICRO_SCALE_MODELS = ("micro", "tiny")


def is_micro_scale(model: str) -> bool:
    """True for the harness's own CPU-built models, by name or by their build record.

    >>> is_micro_scale("micro"), is_micro_scale("Qwen/Qwen2.5-3B-Instruct")
    (True, False)
    """
    return model in MICRO_SCALE_MODELS or (Path(model) / "harness_build.json").is_file()


class RunConfig(BaseModel):
    """Every option of ``harness run``; ``None`` means "the task's default"."""

    model_config = ConfigDict(extra="forbid")

    task: str = "apollo3"
    model: str | None = Field(None, description="model path/hub id, 'tiny', a scripted policy, or an lm-eval type")
    backend: str | None = Field(None, description="scripted | hf | vllm | lm-eval; inferred from --model if unset")
    model_args: str = ""
    split: str = "test"
    noise_levels: list[float] | None = None
    noise_modes: list[str] | None = None
    retriever: str | None = None
    k: int | None = Field(None, ge=1)
    max_turns: int | None = Field(None, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    temperature: float = Field(0.0, ge=0.0)
    batch_size: int = Field(64, ge=1)
    reward_weights: str | None = None
    llm_judge: str | None = Field(None, description="model for the optional Yes/No LLM judge")
    llm_judge_backend: str | None = None
    output_dir: str | None = None
    data_dir: str | None = None
    resume: bool = False
    report: bool = True


def default_output_dir(cfg: RunConfig, label: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.task}-{slug(label, 40, keep='tail')}-{stamp}"


#: Options that may change between a run and its --resume (they do not change any episode).
RESUME_FREE = {"resume", "report", "output_dir", "limit", "batch_size", "data_dir", "noise_levels"}


def check_resume_config(path: Path, cfg: RunConfig) -> None:
    """Refuse to resume a run directory under a different configuration (episodes would mix)."""
    import json

    if not path.is_file():
        return
    saved = json.loads(path.read_text()).get("run", {})
    new = cfg.model_dump()
    changed = sorted(k for k in new if k not in RESUME_FREE and saved.get(k) != new[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume {path.parent} with a different configuration ({diffs}); "
                          f"use a new --output-dir")


def _noise_key(level: float) -> str:
    return f"noise={level:g}"


class EvalRun:
    """One ``harness run`` invocation, composed of plain steps (see module docstring)."""

    def __init__(self, cfg: RunConfig, progress: Callable[[str, int], Callable[[int], None]] | None = None):
        self.cfg = cfg
        self.task: TaskConfig = load_task(cfg.task)
        default_levels = list(DEFAULT_NOISE_LEVELS) if cfg.model is None else [self.task.noise.level]
        self.noise_levels = cfg.noise_levels if cfg.noise_levels is not None else default_levels
        modes = cfg.noise_modes if cfg.noise_modes is not None else list(self.task.noise.modes)
        self.noises = [make_noise(lv, modes) for lv in self.noise_levels]  # validates modes/levels
        self.weights = parse_weight_overrides(cfg.reward_weights, self.task.rewards.weights)
        from harness.policies import infer_backend

        if cfg.model is None:
            self.policies = [(infer_backend(m), m) for m in DEFAULT_POLICIES + TASK_POLICIES.get(self.task.name, ())]
        else:
            self.policies = [(cfg.backend or infer_backend(cfg.model), cfg.model)]
        self.micro_scale = any(is_micro_scale(m) for b, m in self.policies if b != "scripted")
        label = cfg.model or "reference"
        self.out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg, label)
        self.progress = progress
        self.data: TaskData | None = None
        self.timing = {"generate_s": 0.0, "env_s": 0.0, "turns": 0}

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        self.data = load_task_data(self.task, self.cfg.data_dir)
        self.questions = self.data.split(self.cfg.split)[: self.cfg.limit]
        from harness.data.retrieval import build_retriever

        r = self.task.retrieval
        self.retriever = build_retriever(self.cfg.retriever or r.retriever, self.data.corpus, stopwords=r.bm25_stopwords,
                                         dense_model=r.dense_model, batch_size=r.dense_batch_size)
        self.out.mkdir(parents=True, exist_ok=True)
        samples = self.out / "samples.jsonl"
        if not self.cfg.resume and samples.is_file() and samples.stat().st_size > 0:
            raise ConfigError(f"{self.out} already holds a run; pass --resume to continue it or choose --output-dir")
        if self.cfg.resume:
            check_resume_config(self.out / "config.json", self.cfg)
        write_json(self.out / "config.json", {"run": self.cfg.model_dump(), "task": self.task.model_dump()})

    def _policy(self, backend: str, model: str):
        from harness.policies import load_policy

        max_turns = self.cfg.max_turns or self.task.protocol.max_turns
        return load_policy(backend, model, corpus=self.data.corpus, max_turns=max_turns, model_args=self.cfg.model_args,
                           temperature=self.cfg.temperature, seed=self.cfg.seed, batch_size=self.cfg.batch_size)

    def _judge_policy(self):
        if getattr(self, "_judge", None) is None:
            from harness.policies import infer_backend

            name = self.cfg.llm_judge
            self._judge = self._policy(self.cfg.llm_judge_backend or infer_backend(name), name)
        return self._judge

    def _env(self, noise: NoiseConfig):
        from harness.environment.env import Environment

        env = Environment.from_task(self.task, self.data, noise=noise, seed=self.cfg.seed, retriever=self.retriever,
                                    k=self.cfg.k, max_turns=self.cfg.max_turns)
        if self.cfg.max_new_tokens:
            env.max_new_tokens = self.cfg.max_new_tokens
        return env

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        self.setup()
        t0 = time.time()
        started = now()
        by_q = {q.qid: q for q in self.data.questions}
        done: dict[tuple[str, float], dict[str, Episode]] = {}
        for row in read_jsonl(self.out / "samples.jsonl"):
            key = (row["policy"], float(row["noise_level"]))
            done.setdefault(key, {})[row["qid"]] = Episode.from_dict(row, by_q[row["qid"]])
        status = "complete"
        results: dict[str, dict] = {}
        try:
            with JsonlAppender(self.out / "samples.jsonl") as sink:
                for backend, model in self.policies:
                    policy = None
                    results[model] = {}
                    for noise in self.noises:
                        have = done.setdefault((model, noise.level), {})
                        todo = [q for q in self.questions if q.qid not in have]
                        if todo:
                            policy = policy or self._policy(backend, model)
                            self._rollout(policy, model, noise, todo, have, sink)
                        eps = [have[q.qid] for q in self.questions if q.qid in have]
                        metrics = compute_metrics(eps, seed=self.cfg.seed)
                        if self.cfg.llm_judge:
                            from harness.scoring.llm_judge import agreement_metrics

                            metrics.update(agreement_metrics(eps))
                        results[model][_noise_key(noise.level)] = metrics
        except KeyboardInterrupt:
            status = "partial"
            log.warning("interrupted: finished episodes are in %s; rerun with --resume", self.out / "samples.jsonl")
        res = self._results(results, started, time.time() - t0, status)
        write_json(self.out / "results.json", res)
        if self.cfg.report:
            self._report()
        if status == "partial":
            raise KeyboardInterrupt
        return res

    def _rollout(self, policy, model: str, noise: NoiseConfig, todo, have: dict, sink: JsonlAppender) -> None:
        env = self._env(noise)
        tick = self.progress(f"{model} @ {_noise_key(noise.level)}", len(todo)) if self.progress else None
        bs = self.cfg.batch_size
        for i in range(0, len(todo), bs):
            episodes = env.rollout(policy, todo[i : i + bs], progress=tick)
            if self.cfg.llm_judge:
                from harness.scoring.llm_judge import llm_judge

                llm_judge(self._judge_policy(), episodes)
            for ep in episodes:
                ep.rewards = score_episode(ep, self.weights)
                have[ep.question.qid] = ep
                sink.write({**ep.to_dict(), "policy": model, "noise_level": noise.level})
        for k in ("generate_s", "env_s", "turns"):
            self.timing[k] += getattr(env.timers, k)

    # ------------------------------------------------------------------ evaluate / cleanup
    def _results(self, results: dict, started: str, wall: float, status: str) -> dict:
        total = self.timing["generate_s"] + self.timing["env_s"]
        return clean_nans({
            "schema_version": SCHEMA_VERSION,
            "kind": "eval",
            "task": {"name": self.task.name, "version": self.task.version},
            "model": [{"backend": b, "model": m} for b, m in self.policies],
            "micro_scale": self.micro_scale,
            "results": results,
            "n-samples": {m: {k: v.get("n", 0) for k, v in r.items()} for m, r in results.items()},
            "config": self.cfg.model_dump(),
            "reward_weights": self.weights.model_dump(),
            "seed": self.cfg.seed,
            "versions": package_versions(),
            "git_hash": git_hash(),
            "machine": machine_info(),
            "timing": {**self.timing, "wall_s": wall, "env_fraction": self.timing["env_s"] / total if total else None},
            "started_at": started,
            "finished_at": now(),
            "status": status,
        })

    def _report(self) -> None:
        try:
            from harness.analysis.report import write_report

            title = f"harness run: {self.task.name}"
            if self.micro_scale:
                title += " (micro-scale model: not comparable to the paper's 3B model)"
            write_report([self.out], output=self.out / "report.html", title=title)
        except Exception as e:  # the results are already on disk; a report bug must not lose them
            log.error("report failed (results are safe in %s): %r", self.out, e)
