"""``harness train`` as one object: setup -> evaluate step 0 -> train (evaluating as it goes) -> results.

Run directory::

    config.json                 the TrainConfig and everything it resolved to (weights, noises, limits)
    curve.csv                   one row per step; eval steps carry the held-out metrics (harness.train.curve)
    eval_samples/step_NNNNN.jsonl   the held-out episodes of each eval step (Episode.to_dict rows)
    checkpoints/checkpoint-N/   TRL/transformers checkpoints (model, optimiser, scheduler, RNG): --resume
    model/                      the final weights (or adapter, with --lora-rank) of a complete run
    results.json                harness.core.results.RESULTS_KEYS with kind 'train', peak, faults, status
    report.html                 harness.analysis.report, when importable

Status: ``complete``; ``partial`` (Ctrl-C / SIGTERM / --stop-after: a checkpoint and the curve are
saved, --resume continues); ``diverged`` (NaN/inf weights, logits or loss: the curve is kept);
``failed`` (any other error, re-raised after results.json is written).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path

from harness.core.config import load_task
from harness.core.errors import ConfigError
from harness.core.io import slug
from harness.core.results import SCHEMA_VERSION, clean_nans, git_hash, machine_info, now, package_versions, write_json
from harness.core.rundir import RunDir, check_resume
from harness.data.loading import load_task_data
from harness.scoring.metrics import compute_metrics
from harness.scoring.rewards import score_episode
from harness.train.config import TrainConfig, resolve
from harness.train.curve import CurveWriter, FaultMonitor, eval_columns

log = logging.getLogger(__name__)


def default_output_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"train-{cfg.task}-{cfg.preset}-{slug(cfg.model, 40, keep='tail')}-{time.strftime('%Y%m%d-%H%M%S')}"


def checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def _quiet_libraries(threads: int | None) -> None:
    """Silence per-file progress bars and deprecation chatter of the libraries; set torch threads."""
    import warnings

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", message=".*rollout_func.*experimental.*")
    if threads:
        torch.set_num_threads(threads)


class TrainRun:
    """One ``harness train`` invocation. The constructor validates everything and loads no model."""

    def __init__(self, cfg: TrainConfig, callbacks: list | None = None):
        self.cfg = cfg
        self.resolved = resolve(cfg, load_task(cfg.task))
        self.out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg)
        self.rundir = RunDir(self.out)
        self.extra_callbacks = list(callbacks or [])
        self.status = "running"
        self.faults: list[dict] = []
        self.stop_requested = False
        self.monitor = FaultMonitor(cfg.kl_alarm, cfg.zero_std_patience)
        self.timing = {"generate_s": 0.0, "env_s": 0.0, "eval_s": 0.0}
        self.last_metrics: dict = {}
        self._t0 = time.time()
        self._wall_offset = 0.0

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from harness.data.retrieval import build_retriever
        from harness.models.resolve import resolve_model_path
        from harness.train.build import load_tokenizer, make_dataset, make_env
        from harness.train.rollout import EpisodeRollout

        cfg, r = self.cfg, self.resolved
        self._check_output_dir()
        _quiet_libraries(cfg.threads)
        self.data = load_task_data(r.task, cfg.data_dir)
        rc = r.task.retrieval
        retriever = build_retriever(rc.retriever, self.data.corpus, stopwords=rc.bm25_stopwords,
                                    dense_model=rc.dense_model, batch_size=rc.dense_batch_size)
        self.train_env = make_env(r, self.data, retriever, r.train_noise, cfg.seed)
        self.eval_env = make_env(r, self.data, retriever, r.eval_noise, cfg.seed)
        self.train_questions = self.data.split("train")
        self.eval_questions = self.data.split(cfg.eval_split)[: cfg.eval_limit]
        self.model_path = resolve_model_path(cfg.model, self.data.corpus)
        if cfg.warm_start:
            self.model_path = self._warm_start(self.model_path)
        self.tokenizer = load_tokenizer(self.model_path)
        self.dataset = make_dataset(self.train_env, self.train_questions)
        self.rollout = EpisodeRollout(self.train_env, self.tokenizer, self.train_questions, r.weights,
                                      num_generations=cfg.num_generations, temperature=cfg.temperature,
                                      top_p=cfg.top_p, seed=cfg.seed)
        self.checkpoint = self._last_checkpoint() if cfg.resume else None
        start = checkpoint_step(self.checkpoint) if self.checkpoint else 0
        self.curve = CurveWriter.resume(self.out / "curve.csv", start) if cfg.resume else \
            CurveWriter(self.out / "curve.csv")
        self._restore_state(start)
        write_json(self.out / "config.json", r.to_dict(cfg))
        self._build_trainer(start)

    def _warm_start(self, path: str) -> str:
        from harness.train.warmstart import cached_warm_start

        log.info("warm start: %d supervised steps on scripted demonstrations", self.cfg.warm_start)
        return str(cached_warm_start(path, self.resolved.task, self.data, self.cfg.warm_start, self.cfg.seed))

    #: Options that may differ on --resume without changing the curve's prefix.
    RESUME_FREE = {"resume", "report", "output_dir", "data_dir", "max_steps", "stop_after", "threads",
                   "eval_batch_size", "save_every"}

    def _check_output_dir(self) -> None:
        self.rundir.open()   # held until run() returns: a second process into self.out fails at once
        has_run = (self.out / "curve.csv").exists() or (self.out / "checkpoints").is_dir()
        if not self.cfg.resume and (self.out / "curve.csv").exists():
            raise ConfigError(f"{self.out} already holds a training run; pass --resume to continue it "
                              "or choose another --output-dir")
        self.rundir.require_writable("config.json", "results.json", "curve.csv", "report.html")
        if self.cfg.resume:
            check_resume(self.out, "train", self.cfg.model_dump(), self.RESUME_FREE, holds_results=has_run,
                         what="the curve")

    def _last_checkpoint(self) -> Path | None:
        ckpts = sorted((self.out / "checkpoints").glob("checkpoint-*"), key=checkpoint_step)
        if not ckpts:
            log.warning("--resume: no checkpoint in %s; starting from step 0", self.out / "checkpoints")
        return ckpts[-1] if ckpts else None

    def _restore_state(self, start: int) -> None:
        """Faults and wall time recorded up to the resumed step."""
        prev = self.out / "results.json"
        if start and prev.is_file():
            self.faults = [f for f in json.loads(prev.read_text()).get("faults", []) if f["step"] <= start]
        walls = [r["wall_time"] for r in self.curve.rows if isinstance(r.get("wall_time"), (int, float))]
        self._wall_offset = max(walls, default=0.0)

    def _build_trainer(self, start: int) -> None:
        from harness.train.build import make_trainer
        from harness.train.callbacks import HarnessCallback

        self.callback = HarnessCallback(self, start_step=start)
        self.trainer = make_trainer(self.cfg, self.resolved, self.out, self.model_path, self.tokenizer,
                                    self.dataset, self.rollout, [self.callback, *self.extra_callbacks])

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model, step: int) -> dict:
        """The held-out split through the same code as ``harness run``: greedy, fixed seed and noise."""
        from harness.core.results import JsonlAppender
        from harness.policies.hf import HFPolicy, SamplingConfig

        t0 = time.perf_counter()
        was_training = model.training
        policy = HFPolicy(self.cfg.model, device=str(model.device), model=model, tokenizer=self.tokenizer,
                          sampling=SamplingConfig(temperature=0.0, seed=self.cfg.seed),
                          batch_size=self.cfg.eval_batch_size)
        try:
            episodes = self.eval_env.rollout(policy, self.eval_questions)
        finally:
            model.train(was_training)
        for ep in episodes:
            ep.rewards = score_episode(ep, self.resolved.weights)
        path = self.out / "eval_samples" / f"step_{step:05d}.jsonl"
        path.unlink(missing_ok=True)
        with JsonlAppender(path) as sink:
            for ep in episodes:
                sink.write({**ep.to_dict(), "step": step})
        self.last_metrics = compute_metrics(episodes, seed=self.cfg.seed)
        self.timing["eval_s"] += time.perf_counter() - t0
        self._write_results()
        return eval_columns(self.last_metrics)

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        try:
            return self._run()
        finally:
            self.rundir.close()

    def _run(self) -> dict:
        self.setup()
        self._t0 = time.time()
        self.started = now()
        restore = self._install_signal_handlers()
        try:
            if not any(r["step"] == 0 for r in self.curve.rows):
                self.curve.upsert(0, {**self.evaluate(self.trainer.model, 0), "wall_time": self.elapsed()})
            self.trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint else None)
            if self.status == "running":
                self.status = "complete"
                self.trainer.save_model(str(self.out / "model"))
        except KeyboardInterrupt:
            self.status = "partial"
        except Exception as e:
            from harness.train.tokens import Diverged

            if not isinstance(e, Diverged):
                self.status = "failed"
                self.add_fault({"step": self.step, "kind": "error", "detail": repr(e)})
                self._write_results()
                raise
            self.status = "diverged"
            self.add_fault({"step": self.step + 1, "kind": "non_finite", "detail": str(e)})
        finally:
            restore()
            self.callback.bar.close()
        res = self._write_results()
        if self.cfg.report:
            self._report()
        return res

    @property
    def step(self) -> int:
        return self.trainer.state.global_step

    def elapsed(self) -> float:
        return self._wall_offset + time.time() - self._t0

    def add_fault(self, fault: dict) -> None:
        log.warning("fault at step %s: %s (%s)", fault["step"], fault["kind"], fault["detail"])
        self.faults.append(fault)

    def add_timing(self, stats: dict) -> None:
        for k in ("generate_s", "env_s"):
            self.timing[k] += stats.get(k, 0.0)

    def _install_signal_handlers(self):
        """First Ctrl-C / SIGTERM: finish the step, checkpoint, stop (status partial). Second Ctrl-C: abort."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, frame):
            if self.stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_requested = True
            log.warning("stop requested: saving a checkpoint after this step (Ctrl-C again to abort now)")

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]

    # ------------------------------------------------------------------ results
    def _write_results(self) -> dict:
        cfg, r = self.cfg, self.resolved
        last = self.curve.last_eval() if hasattr(self, "curve") else None
        noise_key = f"noise={r.eval_noise.level:g}"
        res = clean_nans({
            "schema_version": SCHEMA_VERSION, "kind": "train",
            "task": {"name": r.task.name, "version": r.task.version},
            "model": [{"backend": "hf", "model": cfg.model}], "micro_scale": cfg.model == "tiny",
            "results": {cfg.model: {noise_key: self.last_metrics}} if self.last_metrics else {},
            "n-samples": {cfg.model: {noise_key: self.last_metrics.get("n", 0)}},
            "config": r.to_dict(cfg), "reward_weights": r.weights.model_dump(), "seed": cfg.seed,
            "versions": package_versions(), "git_hash": git_hash(), "machine": machine_info(),
            "timing": {**self.timing, "wall_s": self.elapsed(), "steps": self.step if hasattr(self, "trainer") else 0},
            "started_at": getattr(self, "started", None), "finished_at": now(),
            "status": "partial" if self.status == "running" else self.status,
            "peak": self.curve.peak() if hasattr(self, "curve") else None,
            "final": {"step": last["step"], "accuracy": last["accuracy"]} if last else None,
            "faults": self.faults,
        })
        write_json(self.out / "results.json", res)
        return res

    def _report(self) -> None:
        try:
            from harness.analysis.report import write_report

            write_report([self.out], output=self.out / "report.html", title=f"harness train: {self.out.name}")
        except Exception as e:  # the curve and results are on disk; a report bug must not lose them
            log.error("report failed (results are safe in %s): %r", self.out, e)
