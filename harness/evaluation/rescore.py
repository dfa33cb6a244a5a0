"""``harness rescore RUN -o NEW``: judge, rewards and metrics recomputed from a run's saved episodes.

What lm-eval's response cache and ``inspect score`` give their users: a new judge rule (``--judge``), an
LLM judge (``--llm-judge MODEL``), other reward semantics or weights, without generating anything again.
The saved episodes are replayed as :class:`~harness.evaluation.run.EvalRun` played them (each question as its
episode saw it: :meth:`harness.environment.env.Environment.episode_question`), judged, rewarded and
summarised by the same code, in the same order, so that with nothing changed the new ``results.json``
equals the old one byte for byte but for its time fields (``timing``, ``started_at``, ``finished_at``);
``versions`` and ``git_hash`` are the re-scoring code's (they decide the judge and rewards), ``machine``
stays where the episodes were generated.

    NEW/config.json    {"run": the run's options with the changes, "task": ..., "rescored": {"from": RUN,
                        "changed": {option: value}}}: what it was re-scored from
    NEW/samples.jsonl  the episodes with their new judge decisions and rewards
    NEW/results.json   the run record (its ``config`` is the run's own options, with the changes)

Only ``harness run`` directories (``samples.jsonl``) are re-scored; a training run's evals are not.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, DataError
from harness.core.options import canonical
from harness.core.record import RunRecord, noise_key, read_record
from harness.core.results import JsonlAppender, now, read_jsonl
from harness.core.rundir import CONFIG, RECORD, REPORT, SAMPLES, RunLifecycle, read_options
from harness.data.loading import load_task_data
from harness.episode.record import Episode
from harness.evaluation.config import RunConfig
from harness.evaluation.run import EvalRun, _holds_episodes, closed_book_rates
from harness.scoring.rewards import score_episode

#: The options a re-scoring may change (everything else would need new episodes).
RESCORE_OPTIONS = ("judge", "llm_judge", "llm_judge_backend", "reward_semantics", "reward_weights")


class _NoSearch:
    """The retriever of a replay: nothing is searched again; it names the retriever the episodes searched with
    (from the source run's record), so the record says what the numbers rest on."""

    def __init__(self, protocol: dict[str, Any] | None = None):
        protocol = protocol or {}
        self.name = protocol.get("retriever")
        self.model_name = protocol.get("model")

    def search(self, queries, k):  # pragma: no cover - a replay never searches
        raise RuntimeError("a re-scored run does not search")


class Rescore(EvalRun):
    """An :class:`EvalRun` whose episodes come from another run's ``samples.jsonl`` instead of a policy."""

    def __init__(self, source: Path | str, output_dir: Path | str, changes: dict[str, Any], report: bool = True):
        self.source = Path(source)
        options, _ = read_options(self.source)
        if not options or not (self.source / SAMPLES).is_file():
            raise ConfigError(f"{self.source} is not a harness run directory (config.json with 'run' options and "
                              "samples.jsonl); only evaluation runs are re-scored")
        self.original: RunRecord = read_record(self.source)
        if self.original.kind != "eval":
            raise ConfigError(f"{self.source} is a training run; harness rescore re-scores harness run directories")
        bad = sorted(set(changes) - set(RESCORE_OPTIONS))
        if bad:
            raise ConfigError(f"harness rescore cannot change {', '.join(bad)}: only {', '.join(RESCORE_OPTIONS)}")
        self.changes = {k: v for k, v in changes.items() if v is not None}
        cfg = RunConfig.model_validate({**canonical(RunConfig, options), **self.changes, "resume": False})
        super().__init__(cfg)
        self.out = Path(output_dir)
        if self.out.resolve() == self.source.resolve():
            raise ConfigError("harness rescore writes a new run directory: give -o another folder than the run's")
        self.report = report
        self.life = RunLifecycle(self.out, section="run", noun="a run", what="the episodes",
                                 files=(CONFIG, RECORD, *([REPORT] if report else [])), append=(SAMPLES,),
                                 holds=_holds_episodes, model=RunConfig)

    def setup(self) -> None:
        self.life.open(self.cfg.model_dump(), resume=False)
        self.data = load_task_data(self.task, self.cfg.data_dir)
        self.questions = self.data.split(self.cfg.split)[: self.cfg.eval_limit]
        self.retriever = _NoSearch(self.original.protocol)
        if self.cfg.closed_book_ref:
            if not Path(self.cfg.closed_book_ref).is_dir():
                raise DataError(f"the run's --closed-book-ref {self.cfg.closed_book_ref} is gone; over- and "
                                "under-search cannot be recomputed")
            self.closed_book, self.closed_book_source = closed_book_rates(self.cfg.closed_book_ref)
        self.life.write_config({"run": self.cfg.model_dump(), "task": self.task.model_dump(),
                                "rescored": {"from": str(self.source), "changed": self.changes}})

    def _run(self) -> RunRecord:
        self.setup()
        t0, started = time.time(), now()
        by_q = {q.qid: q for q in self.data.questions}
        envs: dict[float, Any] = {}
        episodes: dict[tuple[str, float], dict[tuple[str, int], Episode]] = {}
        with JsonlAppender(self.out / SAMPLES) as sink:
            for row in read_jsonl(self.source / SAMPLES):
                level = float(row["noise_level"])
                if level not in envs:
                    envs[level] = self._env(next((n for n in self.noises if n.level == level), self.noises[0]))
                env = envs[level]
                if row["qid"] not in by_q:
                    raise DataError(f"{self.source / SAMPLES}: question {row['qid']} is not in task {self.task.name}'s "
                                    "data as loaded now (other data, or another version of the task)")
                ep = Episode.from_dict(row, env.episode_question(by_q[row["qid"]], row.get("noise") or {}))
                old_llm = (ep.judge or {}).get("llm")
                env.finish(ep)
                if old_llm is not None and "llm_judge" not in self.changes:
                    ep.judge = {**ep.judge, "llm": old_llm}
                episodes.setdefault((row["policy"], level), {})[(ep.question.qid, ep.sample)] = ep
            if self.cfg.llm_judge and "llm_judge" in self.changes:
                from harness.scoring.llm_judge import llm_judge

                for eps in episodes.values():
                    llm_judge(self._judge_policy(), list(eps.values()))
            for eps in episodes.values():
                for ep in eps.values():
                    ep.rewards = score_episode(ep, self.weights, self.semantics)
                    self.n_written += 1
            for row in read_jsonl(self.source / SAMPLES):  # the new rows, in the old file's order
                ep = episodes[(row["policy"], float(row["noise_level"]))][(row["qid"], int(row.get("sample", 0)))]
                sink.write({**ep.to_dict(), "policy": row["policy"], "noise_level": row["noise_level"]})
        results: dict[str, dict] = {}
        for model in self.original.results:
            results[model] = {}
            for key in self.original.results[model]:
                have = next((eps for (m, lv), eps in episodes.items() if m == model and noise_key(lv) == key), {})
                eps = [have[(q.qid, s)] for s in range(self.cfg.samples) for q in self.questions if (q.qid, s) in have]
                results[model][key] = self._metrics(eps)
        # the machine is where the episodes were generated (the versions and commit are the scoring code's)
        res = self._record(results, started, time.time() - t0, self.original.status).model_copy(
            update={"machine": self.original.machine})
        self.life.write_record(res)
        return res
