"""``harness run``: evaluate policies on a task with the search protocol, write a run directory.

    setup     resolve config; open the run directory (harness.core.rundir: exclusive lock, write
              checks, --resume config check); load data, build the retriever, read finished episodes
    run       for each policy, noise level and sample (--samples K): batched rollouts, rewards, judge;
              every finished episode is appended to samples.jsonl at once (a killed run keeps them;
              --resume skips them). Sample s > 0 is played with its own seed
              (harness.environment.samples), so the K samples of a question draw different noise
    evaluate  retry-aware metrics per policy and noise level (with K samples: over all K x n episodes,
              intervals over questions, avg@k, pass@k, maj@k; with --closed-book-ref: over- and
              under-search), the comparability record -> results.json (atomic write)
    cleanup   release the run directory (the command line then writes report.html and prints the table)

Run directory::

    config.json     the resolved RunConfig
    samples.jsonl   one episode per line (+ "policy" and "noise_level" keys; "sample" when K > 1)
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
from harness.core.errors import ConfigError
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
    outcomes,
    read_samples,
)
from harness.data.loading import TaskData, load_task_data
from harness.data.retrieval import describe
from harness.environment.comparability import build_comparability
from harness.environment.samples import sample_seed
from harness.episode.record import Episode
from harness.evaluation.config import RunConfig
from harness.models.resolve import is_micro_scale
from harness.scoring.metrics import compute_metrics, search_need
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
        if cfg.judge is not None:  # --judge: the task's judge with another rule (recorded in config.json's task)
            self.task = self.task.model_copy(update={"judge": self.task.judge.model_copy(update={"rule": cfg.judge})})
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
            self.policies = [(cfg.backend or ("openai" if cfg.base_url else infer_backend(cfg.model)), cfg.model)]
        for backend, model in self.policies:  # a misspelt name fails here, before data, models or a directory
            check_model_name(model, backend)
            check_hub_model(model, backend)     # and a hub id with no hub to reach and no cached copy
        if cfg.llm_judge:
            check_model_name(cfg.llm_judge, self._judge_backend())
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
        #: Episodes already in samples.jsonl (--resume), by (policy, noise level) and (question id, sample).
        self.done: dict[tuple[str, float], dict[tuple[str, int], Episode]] = {}
        #: --closed-book-ref: the reference's success rate per question, and which of its episodes they are.
        self.closed_book: dict[str, float] | None = None
        self.closed_book_source = ""
        self.n_written = 0                  # episodes this process appended to samples.jsonl
        self._judge = None                  # the --llm-judge policy, loaded on first use
        self.timing = {"generate_s": 0.0, "env_s": 0.0, "turns": 0}
        self.request_stats: dict[str, dict] = {}  # served backends: what this process sent, by policy

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
            ep = Episode.from_dict(row, by_q[row["qid"]])
            self.done.setdefault(key, {})[(row["qid"], ep.sample)] = ep
        if self.cfg.closed_book_ref:
            self.closed_book, self.closed_book_source = closed_book_rates(self.cfg.closed_book_ref)
        self.life.write_config({"run": self.cfg.model_dump(), "task": self.task.model_dump()})

    def _policy(self, backend: str, model: str, base_url: str | None = None):
        from harness.policies import load_policy

        c = self.cfg
        max_turns = c.max_turns or self.task.protocol.max_turns
        return load_policy(backend, model, corpus=self.data.corpus, max_turns=max_turns, model_args=c.model_args,
                           temperature=c.temperature, seed=c.seed, batch_size=c.batch_size,
                           base_url=base_url or c.base_url, top_p=c.top_p, api_key_env=c.api_key_env,
                           concurrency=c.concurrency, request_timeout=c.request_timeout, max_retries=c.max_retries,
                           cache=c.cache)

    def _judge_backend(self) -> str:
        from harness.policies import infer_backend

        c = self.cfg
        return c.llm_judge_backend or ("openai" if c.judge_base_url else infer_backend(c.llm_judge))

    def _judge_policy(self):
        if self._judge is None:
            self._judge = self._policy(self._judge_backend(), self.cfg.llm_judge, base_url=self.cfg.judge_base_url)
        return self._judge

    def _env(self, noise: NoiseConfig, sample: int = 0):
        from harness.environment.env import Environment

        env = Environment.from_task(self.task, self.data, noise=noise, seed=sample_seed(self.cfg.seed, sample),
                                    retriever=self.retriever,
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
                        for s in range(self.cfg.samples):
                            todo = [q for q in self.questions if (q.qid, s) not in have]
                            if todo:
                                policy = policy or self._policy(backend, model)
                                self._rollout(policy, name, noise, todo, have, sink, s)
                        eps = [have[(q.qid, s)] for s in range(self.cfg.samples) for q in self.questions
                               if (q.qid, s) in have]
                        results[name][noise_key(noise.level)] = self._metrics(eps)
                        if hasattr(policy, "stats"):
                            self.request_stats[name] = policy.stats.to_dict()
        except KeyboardInterrupt:
            status = "partial"
            log.info("interrupted: finished episodes are in %s", self.out / SAMPLES)
        res = self._record(results, started, time.time() - t0, status)
        self.life.write_record(res)
        if status == "partial":
            raise KeyboardInterrupt
        return res

    def _metrics(self, eps: list[Episode]) -> dict:
        metrics = compute_metrics(eps)
        if self.cfg.llm_judge:
            from harness.scoring.llm_judge import agreement_metrics

            metrics.update(agreement_metrics(eps))
        if self.closed_book is not None:
            metrics.update(search_need(eps, self.closed_book), closed_book_ref=self.closed_book_source)
        return metrics

    def _rollout(self, policy, model: str, noise: NoiseConfig, todo, have: dict, sink: JsonlAppender,
                 sample: int = 0) -> None:
        env = self._env(noise, sample)
        k = self.cfg.samples
        if k > 1 and hasattr(policy, "reseed"):  # each sample its own sampling stream (one sample: as always)
            policy.reseed(sample_seed(self.cfg.seed, sample))
        label = f"{model} @ {noise_key(noise.level)}" + (f" sample {sample + 1}/{k}" if k > 1 else "")
        tick = self.progress(label, len(todo)) if self.progress else None
        bs = self.cfg.batch_size
        for i in range(0, len(todo), bs):
            episodes = env.rollout(policy, todo[i : i + bs], progress=tick)
            if self.cfg.llm_judge:
                from harness.scoring.llm_judge import llm_judge

                llm_judge(self._judge_policy(), episodes)
            for ep in episodes:
                ep.sample = sample
                ep.rewards = score_episode(ep, self.weights, self.semantics)
                have[(ep.question.qid, sample)] = ep
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
            started_at=started, finished_at=now(), status=status, usage=self._usage(),
            interval="cluster_bootstrap" if self.cfg.samples > 1 else "wilson", comparability=self.comparability())

    def _usage(self) -> dict[str, dict]:
        from harness.evaluation.usage import usage_by_policy

        stats = dict(self.request_stats)
        if self._judge is not None and hasattr(self._judge, "stats"):
            stats["llm_judge"] = self._judge.stats.to_dict()
        return usage_by_policy(self.done, stats)

    def comparability(self):
        """What decides whether this run's numbers may be compared with another's (the record's part)."""
        cfg = self.cfg
        return build_comparability(
            self.task, split=cfg.split, questions=self.questions, retriever=cfg.retriever, k=cfg.k,
            noises=self.noises, seed=cfg.seed, max_turns=cfg.max_turns, max_new_tokens=cfg.max_new_tokens,
            stop_after_action=self.stop_after_action, judge_rule=self.task.judge.rule, llm_judge=cfg.llm_judge,
            semantics=self.semantics, weights=self.weights, samples=cfg.samples, temperature=cfg.temperature)

    @property
    def title(self) -> str:
        """The report's title (the command line writes the report once the run returns)."""
        title = f"harness run: {self.task.name}"
        if self.micro_scale:
            title += " (micro-scale model: not comparable to the paper's 3B model)"
        return title


def closed_book_rates(ref: str | Path) -> tuple[dict[str, float], str]:
    """A closed-book reference run's success rate per question (its one policy; at its lowest noise level
    when it ran several: a closed-book answer does not search) and a phrase naming those episodes."""
    groups = read_samples(ref)
    policies = sorted({p for p, _ in groups})
    if len(policies) != 1:
        raise ConfigError(f"--closed-book-ref {ref}: expected the episodes of one policy (the model evaluated, "
                          f"answering without search), found {', '.join(policies) or 'none'}")
    got = outcomes(ref, policy=policies[0], noise=min(n for _, n in groups))
    return got.outcomes, f"{ref}: {got.source}"


def _holds_episodes(out: Path) -> bool:
    samples = out / SAMPLES
    return samples.is_file() and samples.stat().st_size > 0
