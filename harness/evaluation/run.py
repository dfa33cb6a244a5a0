"""``harness run``: evaluate policies on a task with the search protocol, write a run directory.

    setup     resolve config; open the run directory (harness.core.rundir: exclusive lock, write
              checks, --resume config check); load data, build the retriever, read finished episodes
    run       for each policy and noise level: batched rollouts, rewards, judge; every finished
              episode is appended to samples.jsonl at once (a killed run keeps them; --resume
              skips them)
    evaluate  retry-aware metrics per policy and noise level -> results.json (atomic write)
    cleanup   release the run directory (the command line then writes report.html and prints the table)

Run directory::

    config.json     the resolved RunConfig
    samples.jsonl   one episode per line (+ "policy" and "noise_level" keys)
    results.json    the run record (harness.core.record.RunRecord, kind 'eval')
    report.html     written by the command line (harness.report.run_report) after the run returns
    .lock           held (flock) while a process writes here; .lock.json names that process

A run that fails before its first episode (a misspelt --model, an unreachable hub) removes the
directory it created.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from harness.core.config import (
    NoiseConfig,
    TaskConfig,
    load_task,
    make_noise,
    parse_weight_overrides,
    task_label,
)
from harness.core.record import ModelRef, RunRecord, TaskRef, noise_key
from harness.core.results import (
    JsonlAppender,
    git_hash,
    machine_info,
    now,
    package_versions,
    read_jsonl,
)
from harness.core.rundir import (
    CONFIG,
    RECORD,
    REPORT,
    SAMPLES,
    RunLifecycle,
    default_output_dir,
)
from harness.data.loading import TaskData, load_task_data
from harness.data.retrieval import describe
from harness.episode.record import Episode
from harness.evaluation.config import RunConfig
from harness.models.resolve import is_micro_scale
from harness.scoring.metrics import compute_metrics
from harness.scoring.rewards import check_task_weights, check_weights, score_episode

log = logging.getLogger(__name__)

#: What ``harness run`` evaluates when no --model is given: the task's ``reference_policies`` (by default
#: the scripted ones; apollo3_micro adds the micro policy trained on it), at :data:`DEFAULT_NOISE_LEVELS`
#: (the task's noise modes, drop_gold for apollo3: at 0.5 the retry-aware metrics have something to say).
DEFAULT_NOISE_LEVELS = (0.0, 0.5)


class EvalRun:
    """One ``harness run`` invocation, composed of plain steps (see module docstring)."""

    def __init__(self, cfg: RunConfig, progress: Callable[[str, int], Callable[[int], None]] | None = None):
        self.cfg = cfg
        self.task: TaskConfig = load_task(cfg.task, profile=cfg.protocol)
        default_levels = list(DEFAULT_NOISE_LEVELS) if cfg.model is None else [self.task.noise.level]
        self.noise_levels = cfg.noise_levels if cfg.noise_levels is not None else default_levels
        modes = cfg.noise_modes if cfg.noise_modes is not None else list(self.task.noise.modes)
        self.noises = [make_noise(lv, modes) for lv in self.noise_levels]  # validates modes/levels
        check_task_weights(self.task)
        self.weights = check_weights(parse_weight_overrides(cfg.reward_weights, self.task.rewards.weights),
                                     "--reward-weights")
        self.semantics = cfg.reward_semantics or self.task.rewards.semantics
        p = self.task.protocol
        self.stop_after_action = p.stop_after_action if cfg.stop_after_action is None else cfg.stop_after_action
        from harness.policies import check_hub_model, check_model_name, infer_backend, policy_label

        if cfg.model is None:
            self.policies = [(infer_backend(m), m) for m in self.task.reference_policies]
        else:
            self.policies = [(cfg.backend or infer_backend(cfg.model), cfg.model)]
        for backend, model in self.policies:  # a misspelt name fails here, before data, models or a directory
            check_model_name(model, backend)
            check_hub_model(model, backend)     # and a hub id with no hub to reach and no cached copy
        if cfg.llm_judge:
            check_model_name(cfg.llm_judge, cfg.llm_judge_backend or infer_backend(cfg.llm_judge))
        #: What each policy's results are recorded under: the model it loads (lm-eval names a model type).
        self.labels = {(b, m): policy_label(b, m, cfg.model_args) for b, m in self.policies}
        self.micro_scale = any(is_micro_scale(self.labels[(b, m)]) for b, m in self.policies if b != "scripted")
        label = self.labels[self.policies[0]] if cfg.model else "reference"
        self.out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(task_label(cfg.task), label)
        self.progress = progress
        self.data: TaskData | None = None
        self.questions: list = []
        self.retriever = None
        self.life = RunLifecycle(self.out, section="run", noun="a run", what="the episodes",
                                 files=(CONFIG, RECORD, *([REPORT] if cfg.report else [])), append=(SAMPLES,),
                                 holds=_holds_episodes, resume_free=RunConfig.RESUME_FREE,
                                 model=RunConfig)
        #: Episodes already in samples.jsonl (--resume), by (policy, noise level) and question id.
        self.done: dict[tuple[str, float], dict[str, Episode]] = {}
        self.n_written = 0                  # episodes this process appended to samples.jsonl
        self._judge = None                  # the --llm-judge policy, loaded on first use
        self.timing = {"generate_s": 0.0, "env_s": 0.0, "turns": 0}

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        self.life.open(self.cfg.model_dump(), resume=self.cfg.resume)  # locked until run() returns
        self.data = load_task_data(self.task, self.cfg.data_dir)
        self.questions = self.data.split(self.cfg.split)[: self.cfg.eval_limit]
        from harness.data.retrieval import build_retriever

        self.retriever = build_retriever(self.task.retrieval, self.data.corpus, self.cfg.retriever)
        by_q = {q.qid: q for q in self.data.questions}
        for row in read_jsonl(self.out / SAMPLES):  # a corrupt line stops the run here, before anything is written
            key = (row["policy"], float(row["noise_level"]))
            self.done.setdefault(key, {})[row["qid"]] = Episode.from_dict(row, by_q[row["qid"]])
        self.life.write_config({"run": self.cfg.model_dump(), "task": self.task.model_dump()})

    def _policy(self, backend: str, model: str):
        from harness.policies import load_policy

        max_turns = self.cfg.max_turns or self.task.protocol.max_turns
        return load_policy(backend, model, corpus=self.data.corpus, max_turns=max_turns, model_args=self.cfg.model_args,
                           temperature=self.cfg.temperature, seed=self.cfg.seed, batch_size=self.cfg.batch_size)

    def _judge_policy(self):
        if self._judge is None:
            from harness.policies import infer_backend

            name = self.cfg.llm_judge
            self._judge = self._policy(self.cfg.llm_judge_backend or infer_backend(name), name)
        return self._judge

    def _env(self, noise: NoiseConfig):
        from harness.environment.env import Environment

        env = Environment.from_task(self.task, self.data, noise=noise, seed=self.cfg.seed, retriever=self.retriever,
                                    k=self.cfg.k, max_turns=self.cfg.max_turns,
                                    stop_after_action=self.stop_after_action)
        if self.cfg.max_new_tokens:
            env.max_new_tokens = self.cfg.max_new_tokens
        return env

    # ------------------------------------------------------------------ run
    def run(self) -> RunRecord:
        """setup -> episodes -> results; the run directory is locked throughout and released at the end.

        A run that fails before its first episode removes the directory it created (a misspelt model
        or an offline hub leaves no empty ``runs/...`` behind).
        """
        try:
            res = self._run()
        except BaseException:
            self.life.close(discard=self.n_written == 0)
            raise
        self.life.close()
        return res

    def _run(self) -> RunRecord:
        self.setup()
        t0 = time.time()
        started = now()
        done = self.done
        status = "complete"
        results: dict[str, dict] = {}
        try:
            with JsonlAppender(self.out / SAMPLES) as sink:
                for backend, model in self.policies:
                    policy = None
                    name = self.labels[(backend, model)]
                    results[name] = {}
                    for noise in self.noises:
                        have = done.setdefault((name, noise.level), {})
                        todo = [q for q in self.questions if q.qid not in have]
                        if todo:
                            policy = policy or self._policy(backend, model)
                            self._rollout(policy, name, noise, todo, have, sink)
                        eps = [have[q.qid] for q in self.questions if q.qid in have]
                        metrics = compute_metrics(eps)
                        if self.cfg.llm_judge:
                            from harness.scoring.llm_judge import agreement_metrics

                            metrics.update(agreement_metrics(eps))
                        results[name][noise_key(noise.level)] = metrics
        except KeyboardInterrupt:
            status = "partial"
            log.info("interrupted: finished episodes are in %s", self.out / SAMPLES)
        res = self._record(results, started, time.time() - t0, status)
        self.life.write_record(res)
        if status == "partial":
            raise KeyboardInterrupt
        return res

    def _rollout(self, policy, model: str, noise: NoiseConfig, todo, have: dict, sink: JsonlAppender) -> None:
        env = self._env(noise)
        tick = self.progress(f"{model} @ {noise_key(noise.level)}", len(todo)) if self.progress else None
        bs = self.cfg.batch_size
        for i in range(0, len(todo), bs):
            episodes = env.rollout(policy, todo[i : i + bs], progress=tick)
            if self.cfg.llm_judge:
                from harness.scoring.llm_judge import llm_judge

                llm_judge(self._judge_policy(), episodes)
            for ep in episodes:
                ep.rewards = score_episode(ep, self.weights, self.semantics)
                have[ep.question.qid] = ep
                sink.write({**ep.to_dict(), "policy": model, "noise_level": noise.level})
                self.n_written += 1
        for k in ("generate_s", "env_s", "turns"):
            self.timing[k] += getattr(env.timers, k)

    # ------------------------------------------------------------------ evaluate / cleanup
    def _record(self, results: dict, started: str, wall: float, status: str) -> RunRecord:
        total = self.timing["generate_s"] + self.timing["env_s"]
        return RunRecord(
            kind="eval", task=TaskRef(name=self.task.name, version=self.task.version),
            model=[ModelRef(backend=b, model=self.labels[(b, m)]) for b, m in self.policies],
            micro_scale=self.micro_scale,
            results=results, n_samples={m: {k: v.get("n", 0) for k, v in r.items()} for m, r in results.items()},
            config=self.cfg.model_dump(), reward_weights=self.weights.model_dump(), reward_semantics=self.semantics,
            protocol={"profile": self.task.profile, "stop_after_action": self.stop_after_action,
                      **(describe(self.retriever) if self.retriever is not None else {})}, seed=self.cfg.seed,
            versions=package_versions(), git_hash=git_hash(), machine=machine_info(),
            timing={**self.timing, "wall_s": wall, "env_fraction": self.timing["env_s"] / total if total else None},
            started_at=started, finished_at=now(), status=status)

    @property
    def title(self) -> str:
        """The report's title (the command line writes the report once the run returns)."""
        title = f"harness run: {self.task.name}"
        if self.micro_scale:
            title += " (micro-scale model: not comparable to the paper's 3B model)"
        return title


def _holds_episodes(out: Path) -> bool:
    samples = out / SAMPLES
    return samples.is_file() and samples.stat().st_size > 0
