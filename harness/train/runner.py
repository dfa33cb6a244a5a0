"""``harness train`` as one object: setup -> evaluate step 0 -> train (evaluating as it goes) -> results.

Run directory::

    config.json                 the TrainConfig and everything it resolved to (weights, noises, limits)
    curve.csv                   one row per step; eval steps carry the held-out metrics (harness.train.curve)
    eval_samples/step_NNNNN.jsonl   the held-out episodes of each eval step (Episode.to_dict rows)
    checkpoints/checkpoint-N/   TRL/transformers checkpoints (model, optimiser, scheduler, RNG) plus
                                harness_state.json (environment counters, fault streaks): --resume
    peak/                       the best eval's model as a HF folder, LoRA merged, with peak.json (harness.train.peak)
    weights_start.pt            a fixed sample of the step-0 trainable weights (curve.csv's weight_change is measured
                                from it: harness.train.weights)
    model/                      the final weights (or adapter, with --lora-rank) of a complete run
    results.json                the run record (harness.core.record.RunRecord, kind 'train': peak, stopping, faults)
    report.html                 written by the command line (harness.report.run_report) after the run returns

Status: ``complete``; ``partial`` (Ctrl-C / SIGTERM / --stop-after: a checkpoint and the curve are
saved, --resume continues); ``stopped_collapse`` / ``stopped_patience`` (--stop-on-collapse /
--patience: the online detector of harness.stats.detect ended the run; a checkpoint is saved and a
resumed run replays the curve to the same decision); ``diverged`` (NaN/inf weights, logits or loss:
the curve is kept); ``failed`` (any other error, re-raised after results.json is written).

--resume continues from the newest *complete* checkpoint (one a kill during saving left without its
trainer state, optimiser, scheduler, RNG or harness state is set aside, and said so), with the curve,
eval samples and faults cut to its step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from harness.core.config import load_task, task_label
from harness.core.io import atomic_write_text
from harness.core.record import (
    Fault,
    Final,
    LearningVerdict,
    ModelRef,
    Peak,
    RunRecord,
    Stopping,
    TaskRef,
    noise_key,
    read_record,
)
from harness.core.results import git_hash, machine_info, now, package_versions
from harness.core.rundir import (
    CONFIG,
    CURVE,
    RECORD,
    REPORT,
    RunLifecycle,
    default_output_dir,
    eval_samples_path,
    eval_steps,
)
from harness.data.loading import load_task_data
from harness.data.retrieval import describe
from harness.models.resolve import is_micro_scale
from harness.scoring.metrics import compute_metrics
from harness.scoring.rewards import score_episode
from harness.stats.detect import OnlineDetector
from harness.train.config import TrainConfig, resolve, with_task_defaults
from harness.train.curve import CurveWriter, FaultMonitor, eval_columns
from harness.train.peak import PeakKeeper
from harness.train.weights import START_FILE, WeightSketch

log = logging.getLogger(__name__)

#: The harness's own state in a checkpoint folder (written by HarnessCallback.on_save).
HARNESS_STATE = "harness_state.json"
#: Files every complete checkpoint has besides the weights (a kill during saving leaves some out).
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", HARNESS_STATE)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")
#: Statuses of a run ended by a stopping rule, by detector action.
STOP_STATUS = {"collapse": "stopped_collapse", "patience": "stopped_patience"}


def checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def checkpoint_problems(path: Path) -> list[str]:
    """What a checkpoint folder lacks to be resumed from (empty: complete).

    >>> import tempfile
    >>> checkpoint_problems(Path(tempfile.mkdtemp()))[:2]
    ['no weights', 'no trainer_state.json']
    """
    problems = [] if any((path / f).is_file() for f in WEIGHT_FILES) else ["no weights"]
    problems += [f"no {f}" for f in CHECKPOINT_FILES if not (path / f).is_file()]
    if not any(path.glob("rng_state*.pth")):
        problems.append("no RNG state")
    for name in ("trainer_state.json", HARNESS_STATE):
        if (path / name).is_file():
            try:
                json.loads((path / name).read_text())
            except ValueError:
                problems.append(f"{name} is not valid JSON")
    return problems


@contextlib.contextmanager
def quiet_libraries(threads: int | None) -> Iterator[None]:
    """While a run lasts: no per-file progress bars, library logging at ERROR, the library warnings the
    harness knows about silenced, torch at ``threads`` CPU threads (0 or None: torch's default). Everything is
    restored on exit."""
    import warnings

    import torch
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    n_threads = torch.get_num_threads()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
            warnings.filterwarnings("ignore", message=".*rollout_func.*experimental.*")
            if threads:
                torch.set_num_threads(threads)
            yield
    finally:
        torch.set_num_threads(n_threads)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


class TrainRun:
    """One ``harness train`` invocation. The constructor validates everything and loads no model."""

    def __init__(self, cfg: TrainConfig, callbacks: list | None = None):
        task = load_task(cfg.task, profile=cfg.protocol)
        self.cfg = cfg = with_task_defaults(cfg, task)  # the task's and preset's recipe where the run set none
        if cfg.protocol != task.profile:                 # the preset chose the protocol profile
            task = load_task(cfg.task, profile=cfg.protocol)
        self.resolved = resolve(cfg, task)
        from harness.policies import check_hub_model, check_model_name

        check_model_name(cfg.model, "hf")  # a typo fails here, before torch loads or a directory is made
        check_hub_model(cfg.model, "hf")   # and a hub id with no hub to reach and no cached copy
        self.out = (Path(cfg.output_dir) if cfg.output_dir
                    else default_output_dir("train", task_label(cfg.task), cfg.preset, cfg.model))
        self.life = RunLifecycle(self.out, section="train", noun="a training run", what="the curve",
                                 files=(CONFIG, RECORD, CURVE, REPORT), holds=lambda d: (d / CURVE).exists(),
                                 has_results=lambda d: (d / CURVE).exists() or (d / "checkpoints").is_dir(),
                                 resume_free=TrainConfig.RESUME_FREE, model=TrainConfig)
        self.extra_callbacks = list(callbacks or [])
        self.status = "running"
        self.faults: list[Fault] = []
        self.stop_requested = False
        self.monitor = FaultMonitor(cfg.kl_alarm, cfg.zero_std_patience)
        self.timing = {"generate_s": 0.0, "env_s": 0.0, "eval_s": 0.0}
        self.last_metrics: dict = {}
        self._t0 = time.time()
        self._wall_offset = 0.0
        self.started: str | None = None
        self.curve = CurveWriter(self.out / CURVE)  # replaced by the resumed rows in setup()
        self.detector = OnlineDetector(patience=cfg.patience, collapse=cfg.stop_on_collapse)
        self.peak = PeakKeeper(self.out, cfg.keep_peak, {
            "task": cfg.task, "source_model": cfg.model, "seed": cfg.seed, "micro_scale": is_micro_scale(cfg.model),
            "eval_noise": self.resolved.eval_noise.model_dump(), "eval_split": cfg.eval_split})
        # built by setup(): data, environments, model path, tokenizer, rollout, trainer
        self.data = self.train_env = self.eval_env = self.tokenizer = self.dataset = self.rollout = None
        self.retriever = None
        self.train_questions: list = []
        self.eval_questions: list = []
        self.model_path: str | None = None
        self.checkpoint: Path | None = None
        self.start_step = 0
        self.trainer = None
        self.callback = None
        self.sketch: WeightSketch | None = None

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from harness.data.retrieval import build_retriever
        from harness.models.resolve import resolve_model_path
        from harness.train.build import load_tokenizer, make_dataset, make_env
        from harness.train.rollout import EpisodeRollout

        cfg, r = self.cfg, self.resolved
        self._check_output_dir()
        self.data = load_task_data(r.task, cfg.data_dir)
        self.retriever = retriever = build_retriever(r.task.retrieval, self.data.corpus)
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
                                      top_p=cfg.top_p, seed=cfg.seed, semantics=r.semantics)
        self.checkpoint = self._last_checkpoint() if cfg.resume else None
        start = self.start_step = checkpoint_step(self.checkpoint) if self.checkpoint else 0
        if cfg.resume:
            self.curve = CurveWriter.resume(self.out / CURVE, start)
            self.curve.write()  # a resumed run's curve.csv is cut to its checkpoint at once
        self._restore_state(start)
        self.life.write_config(r.to_dict(cfg))
        self._build_trainer(start)

    def _warm_start(self, path: str) -> str:
        from harness.train.warmstart import cached_warm_start

        log.info("warm start: %d supervised steps on scripted demonstrations", self.cfg.warm_start)
        return str(cached_warm_start(path, self.resolved.task, self.data, self.cfg.warm_start, self.cfg.seed,
                                     lr=self.cfg.warm_start_lr))

    def _check_output_dir(self) -> None:
        self.life.open(self.cfg.model_dump(), resume=self.cfg.resume)  # held until run() returns

    def _last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint; incomplete ones (a kill during saving) are moved aside."""
        folder = self.out / "checkpoints"
        ckpts = sorted((p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
                       key=checkpoint_step)
        for path in reversed(ckpts):
            problems = checkpoint_problems(path)
            if not problems:
                return path
            aside = folder / f"incomplete-{path.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            path.rename(aside)
            log.warning("--resume: %s is incomplete (%s), probably killed while saving; moved to %s and falling "
                        "back to the previous checkpoint", path.name, ", ".join(problems), aside.name)
        log.warning("--resume: no complete checkpoint in %s; starting from step 0", folder)
        return None

    def _restore_state(self, start: int) -> None:
        """Everything a resumed run carries over from its checkpoint: faults, wall time, environment
        counters and fault streaks (harness_state.json), the stopping decisions (replayed from the
        curve), the best eval so far and the peak folder; eval samples past the checkpoint are dropped."""
        if start and (self.out / RECORD).is_file():
            self.faults = [f for f in read_record(self.out).faults if f.step <= start]
        walls = [r["wall_time"] for r in self.curve.rows if isinstance(r.get("wall_time"), (int, float))]
        self._wall_offset = max(walls, default=0.0)
        if self.checkpoint is not None:
            state = json.loads((self.checkpoint / HARNESS_STATE).read_text())
            self.train_env.load_state_dict(state.get("train_env", {}))
            self.eval_env.load_state_dict(state.get("eval_env", {}))
            self.monitor.load_state_dict(state.get("fault_monitor", {}))
        for step in eval_steps(self.out):
            if step > start:
                eval_samples_path(self.out, step).unlink()
        evals = [r for r in self.curve.rows if isinstance(r.get("accuracy"), (int, float))]
        self.detector.replay((r["step"], r["accuracy"], self._eval_n(r)) for r in evals)
        self.peak.seed_from_curve(evals)
        if self.cfg.resume:
            self.peak.reconcile(start, self.out / "checkpoints", self.model_path, self.tokenizer,
                                self._eval_n(next((r for r in evals if r["step"] == self.peak.best_step), {})))

    def _eval_n(self, row: dict) -> int:
        """Questions of an eval row (older curves lack the column: the eval split's size)."""
        n = row.get("n")
        return int(n) if isinstance(n, (int, float)) and n >= 1 else len(self.eval_questions)

    def save_state(self, checkpoint: Path, step: int) -> None:
        """The harness state a resume needs, into the checkpoint folder just saved (HarnessCallback.on_save)."""
        if not checkpoint.is_dir():
            return
        state = {"step": step, "train_env": self.train_env.state_dict(), "eval_env": self.eval_env.state_dict(),
                 "fault_monitor": self.monitor.state_dict()}
        atomic_write_text(checkpoint / HARNESS_STATE, json.dumps(state, sort_keys=True) + "\n")

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
            ep.rewards = score_episode(ep, self.resolved.weights, self.resolved.semantics)
        path = eval_samples_path(self.out, step)
        path.unlink(missing_ok=True)
        with JsonlAppender(path) as sink:
            for ep in episodes:
                sink.write({**ep.to_dict(), "step": step})
        self.last_metrics = compute_metrics(episodes)
        self.timing["eval_s"] += time.perf_counter() - t0
        change = self.sketch.change(model) if self.sketch is not None else None
        self._write_results()
        return {**eval_columns(self.last_metrics), "weight_change": change}

    def _start_sketch(self) -> None:
        """The step-0 sample of the trainable weights: kept in the run directory, so a resumed run measures
        ``weight_change`` from the same start (a run resumed from a record without one measures from its resume)."""
        path = self.out / START_FILE
        self.sketch = WeightSketch.load(path) if self.cfg.resume and path.is_file() else None
        if self.sketch is None:
            self.sketch = WeightSketch.take(self.trainer.model)
            self.sketch.save(path)

    def after_eval(self, model, step: int, metrics: dict) -> str | None:
        """Keep the model when this eval is the best so far; the stop status when a stopping rule fires."""
        acc, n = metrics.get("accuracy"), int(metrics.get("n") or 0)
        if acc is None or n < 1:
            return None
        self.peak.consider(model, self.tokenizer, step, acc, n, self.model_path)
        decision = self.detector.update(step, acc, n)
        if decision.stop:
            log.warning("stopping at step %d: %s", step, decision.reason)
            return STOP_STATUS[decision.action]
        return None

    # ------------------------------------------------------------------ run
    def run(self) -> RunRecord:
        try:
            with quiet_libraries(self.cfg.threads):
                return self._run()
        finally:
            self.life.close()

    def _run(self) -> dict:
        self.setup()
        self._t0 = time.time()
        self.started = now()
        restore = self._install_signal_handlers()
        try:
            self._start_sketch()
            if not any(r["step"] == 0 for r in self.curve.rows):
                metrics = self.evaluate(self.trainer.model, 0)
                self.curve.upsert(0, {**metrics, "wall_time": self.elapsed()})
                self.after_eval(self.trainer.model, 0, metrics)
            if self.detector.stop_step is not None and self.start_step < self.cfg.max_steps:
                self.status = STOP_STATUS[self.detector.decision.action]
                log.warning("--resume: the run was stopped at step %s (%s); nothing to train",
                            self.detector.stop_step, self.detector.decision.reason)
            else:
                self.trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint else None)
            if self.status == "running":
                self.status = "complete"
                self.trainer.save_model(str(self.out / "model"))
        except KeyboardInterrupt:
            self.status = "partial"
        except Exception as e:
            from harness.policies.hf import Diverged

            if not isinstance(e, Diverged):
                self.status = "failed"
                self.add_fault({"step": self.step, "kind": "error", "detail": repr(e)})
                self._write_results()
                raise
            self.status = "diverged"
            self.add_fault({"step": self.step + 1, "kind": "non_finite", "detail": str(e)})
        finally:
            restore()
            if self.callback is not None:
                self.callback.bar.close()
        return self._write_results()

    @property
    def step(self) -> int:
        return max(self.trainer.state.global_step if self.trainer is not None else 0, self.start_step)

    def elapsed(self) -> float:
        return self._wall_offset + time.time() - self._t0

    def add_fault(self, fault: dict) -> None:
        f = Fault(**fault)
        log.warning("fault at step %s: %s (%s)", f.step, f.kind, f.detail)
        self.faults.append(f)

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
    def _write_results(self) -> RunRecord:
        cfg, r = self.cfg, self.resolved
        last = self.curve.last_eval()
        key = noise_key(r.eval_noise.level)
        rec = RunRecord(
            kind="train", task=TaskRef(name=r.task.name, version=r.task.version),
            model=[ModelRef(backend="hf", model=cfg.model)], micro_scale=is_micro_scale(cfg.model),
            results={cfg.model: {key: self.last_metrics}} if self.last_metrics else {},
            n_samples={cfg.model: {key: self.last_metrics.get("n", 0)}},
            config=r.to_dict(cfg), reward_weights=r.weights.model_dump(), reward_semantics=r.semantics,
            protocol={"profile": r.task.profile, "stop_after_action": r.stop_after_action,
                      **(describe(self.retriever) if self.retriever is not None else {})}, seed=cfg.seed,
            versions=package_versions(), git_hash=git_hash(), machine=machine_info(),
            timing={**self.timing, "wall_s": self.elapsed(), "steps": self.step},
            started_at=self.started, finished_at=now(),
            status="partial" if self.status == "running" else self.status,
            peak=self._peak_summary(), stopping=self._stopping_summary(),
            final=Final(step=last["step"], accuracy=last["accuracy"]) if last else None,
            faults=self.faults, learning=self._learning())
        self.life.write_record(rec)
        return rec

    def _peak_summary(self) -> Peak | None:
        """The best eval with its Wilson interval, the steps tied with it and their pooled level;
        ``checkpoint``: the ``peak/`` folder holding its model (None when not kept)."""
        decision = self.detector.decision
        if decision is None:
            return None
        p = decision.peak.to_dict()
        kept = self.peak.info()
        return Peak(step=p["step"], accuracy=p["accuracy"], interval=p["interval"], n=p["n"],
                    tied_steps=p["tied_steps"], level=p["level"], level_interval=p["level_interval"],
                    checkpoint="peak" if kept and kept.get("step") == p["step"] else None)

    def _learning(self) -> LearningVerdict | None:
        """Did the run learn (harness.stats.learning), from the curve so far; None before the step-0 eval."""
        import pandas as pd

        from harness.stats.curves import eval_points
        from harness.stats.learning import learning_from_curve

        if self.curve.last_eval() is None:
            return None
        curve = pd.DataFrame(self.curve.rows)
        verdict = learning_from_curve(curve, eval_points(curve)[0])
        return LearningVerdict(**verdict.to_dict()) if verdict else None

    def _stopping_summary(self) -> Stopping:
        d = self.detector.decision
        return Stopping(stop_on_collapse=self.cfg.stop_on_collapse, patience=self.cfg.patience,
                        decision=d.action if d else None, stop_step=self.detector.stop_step,
                        reason=d.reason if d and d.stop else None,
                        evals_since_better=d.since_better if d else None)
