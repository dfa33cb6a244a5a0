"""``harness train`` as one object: setup -> evaluate step 0 -> train (evaluating as it goes) -> results.

Run directory::

    config.json                 the TrainConfig and everything it resolved to (weights, noises, limits)
    curve.csv                   one row per step; eval steps carry the selection split's metrics and, where it
                                was evaluated, the reported split's (test_*: harness.train.curve)
    eval_samples/step_NNNNN.jsonl   the selection split's episodes of each eval step (Episode.to_dict rows)
    eval_samples/reported/step_NNNNN.jsonl   the reported split's, where it was evaluated (another split only)
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

The protocol (docs/detection.md, "Select on one split, report on another"): every ``--eval-every`` steps
the selection split (``--selection-split``, default ``dev``, carved from the training questions) is
evaluated, and only it decides: the peak and ``peak/``, ``--patience``, ``--stop-on-collapse``, and a
sweep's pruning and objective. The reported split (``--eval-split``, default ``test``) is evaluated at
each new best of the selection split and at the end (``--eval-reported every``: at every eval), so the
headline is the reported split at the selected step, never the maximum of many noisy evals of the
reported questions. ``--selection-split test`` is the paper's protocol, labelled optimistic.
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
    OPTIMISTIC,
    Fault,
    Final,
    LearningVerdict,
    ModelRef,
    Peak,
    RunRecord,
    SplitEval,
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
from harness.environment.comparability import build_comparability
from harness.environment.samples import sample_seed
from harness.models.resolve import is_micro_scale
from harness.scoring.metrics import compute_metrics
from harness.scoring.rewards import score_episode
from harness.stats.detect import OnlineDetector
from harness.train.config import TrainConfig, resolve, with_task_defaults
from harness.train.curve import CurveWriter, FaultMonitor, eval_columns, reported_columns, reported_eval
from harness.train.peak import PeakKeeper
from harness.train.rollback import REF_MODEL, SnapshotStore, intervention_marks
from harness.train.weights import START_FILE, WeightSketch

log = logging.getLogger(__name__)

#: The harness's own state in a checkpoint folder (written by HarnessCallback.on_save).
HARNESS_STATE = "harness_state.json"
#: Files every complete checkpoint has besides the weights (a kill during saving leaves some out).
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", HARNESS_STATE)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")
#: Statuses of a run ended by a stopping rule, by detector action.
STOP_STATUS = {"collapse": "stopped_collapse", "patience": "stopped_patience"}


#: What torch and safetensors say when a file cannot be written (they raise RuntimeError, naming no file).
_WRITE_FAILURES = ("No space left", "file write failed", "failed writing file", "Disk quota exceeded",
                   "Read-only file system", "IoError")


def write_failure(error: BaseException, where: Path) -> OSError | None:
    """An OSError naming ``where`` for an error that is a failed write (a full disk while saving a checkpoint),
    so the command line says it in one line; None for any other error.

    >>> write_failure(RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed "
    ...                            "writing file data/3: file write failed"), Path("run/checkpoints")).filename
    'run/checkpoints'
    >>> write_failure(ValueError("a bug"), Path("run")) is None
    True
    """
    from harness.core.io import named

    if isinstance(error, OSError):
        return named(error, where)
    text = " ".join(str(error).split())
    if any(s in text for s in _WRITE_FAILURES):
        return OSError(28 if "No space left" in text else 5, f"could not write the run's files ({text[:200]})",
                       str(where))
    return None


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
    problems += unreadable_files(path)
    return problems


def unreadable_files(path: Path) -> list[str]:
    """What in a checkpoint folder cannot be read back: a safetensors file cut short (a kill or a full disk
    while saving), a torch file that is not an intact archive, or whose pickle asks for anything but
    tensors and plain data (``torch.load(weights_only=True)`` refuses it without running it).

    The small torch files (RNG and scheduler states) are loaded that way, with the numpy types the trainer
    allows when it resumes; the optimiser's, as large as the model, only has its archive checked (every
    member's CRC).
    """
    import zipfile

    problems = []
    for f in sorted(path.glob("*.safetensors")):
        why = _safetensors_problem(f)
        if why:
            problems.append(f"{f.name} {why}")
    for f in sorted([*path.glob("*.pth"), *path.glob("*.pt"), *path.glob("*.bin")]):
        try:
            with zipfile.ZipFile(f) as z:
                bad = z.testzip()
            if bad is not None:
                problems.append(f"{f.name} is corrupt (member {bad})")
                continue
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            problems.append(f"{f.name} is not a readable torch file ({type(e).__name__})")
            continue
        if f.name.startswith("rng_state") or f.name == "scheduler.pt":
            import torch
            from transformers.trainer_pt_utils import safe_globals

            try:
                with safe_globals():   # the numpy types an RNG state holds, as the trainer allows them on resume
                    torch.load(f, map_location="cpu", weights_only=True)
            except Exception as e:  # UnpicklingError for a pickle asking for more than tensors
                problems.append(f"{f.name} cannot be loaded safely ({type(e).__name__})")
    return problems


def _safetensors_problem(f: Path) -> str | None:
    """Why a safetensors file is unreadable (header cut or garbled, tensors past the end), or None."""
    import struct

    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "is cut short (no header)"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return "is cut short (header past the end)"
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as e:
        return f"has an unreadable header ({type(e).__name__})"
    if not isinstance(header, dict):
        return "has an unreadable header"
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if 8 + n + max(ends, default=0) > size:
        return f"is cut short ({size} bytes, its header needs {8 + n + max(ends, default=0)})"
    return None


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

        from harness.train.reporting import check_installed

        check_installed(cfg.report_to or [])   # so does a --report-to backend that is not installed
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
        #: eval_s = eval_selection_s + eval_reported_s: the reported split's evals are the protocol's added cost
        self.timing = {"generate_s": 0.0, "env_s": 0.0, "eval_s": 0.0, "eval_selection_s": 0.0, "eval_reported_s": 0.0}
        self.last_metrics: dict = {}
        self._t0 = time.time()
        self._wall_offset = 0.0
        self.started: str | None = None
        self.curve = CurveWriter(self.out / CURVE)  # replaced by the resumed rows in setup()
        self.detector = OnlineDetector(patience=cfg.patience, collapse=cfg.collapse_action is not None)
        #: The selection split is the reported one (the paper's protocol): its peak is optimistic.
        self.optimistic = cfg.selection_split == cfg.eval_split
        #: --on-collapse rollback: the best evals' weights and optimiser state, and the rollbacks done so far.
        self.snapshots = SnapshotStore(self.out, cfg.collapse_action == "rollback")
        self.interventions: list[dict] = []
        self.peak = PeakKeeper(self.out, cfg.keep_peak, {
            "task": cfg.task, "source_model": cfg.model, "seed": cfg.seed, "micro_scale": is_micro_scale(cfg.model),
            "eval_noise": self.resolved.eval_noise.model_dump(), "eval_split": cfg.eval_split,
            "selection_split": cfg.selection_split, "optimistic": self.optimistic,
            **({"selection": OPTIMISTIC} if self.optimistic else {})})
        #: The reported split's evals so far, by step (from the curve on resume).
        self.reported: dict[int, SplitEval] = {}
        # built by setup(): data, environments, model path, tokenizer, rollout, trainer
        self.data = self.train_env = self.eval_env = self.tokenizer = self.dataset = self.rollout = None
        self.retriever = None
        self.train_questions: list = []
        self.eval_questions: list = []        # the reported split
        self.select_questions: list = []      # the selection split
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
        from harness.train.schedule import noise_schedule

        cfg, r = self.cfg, self.resolved
        self._check_output_dir()
        self.data = load_task_data(r.task, cfg.data_dir)
        self.retriever = retriever = build_retriever(r.task.retrieval, self.data.corpus)
        self.train_env = make_env(r, self.data, retriever, r.train_noise, cfg.seed)
        self.eval_env = make_env(r, self.data, retriever, r.eval_noise, cfg.seed)
        self.train_questions = self.data.split("train")
        self.eval_questions = self.data.split(cfg.eval_split)[: cfg.eval_limit]
        self.select_questions = self.data.split(cfg.selection_split)[: cfg.eval_limit]
        self.model_path = resolve_model_path(cfg.model, self.data.corpus)
        if cfg.warm_start:
            self.model_path = self._warm_start(self.model_path)
        self.tokenizer = load_tokenizer(self.model_path)
        self.dataset = make_dataset(self.train_env, self.train_questions)
        self.rollout = EpisodeRollout(self.train_env, self.tokenizer, self.train_questions, r.weights,
                                      num_generations=cfg.num_generations, temperature=cfg.temperature,
                                      top_p=cfg.top_p, seed=cfg.seed, semantics=r.semantics,
                                      noise_at=noise_schedule(cfg.train_noise_schedule, r.train_noise, cfg.max_steps,
                                                              cfg.train_noise_start, cfg.train_noise_base))
        self.checkpoint = self._last_checkpoint() if cfg.resume else None
        start = self.start_step = checkpoint_step(self.checkpoint) if self.checkpoint else 0
        if cfg.resume:
            self.curve = CurveWriter.resume(self.out / CURVE, start)
            self.curve.write()  # a resumed run's curve.csv is cut to its checkpoint at once
        self._restore_state(start)
        self.life.write_config(r.to_dict(cfg))
        self._build_trainer(start)
        self._restore_reference()

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
            log.warning("--resume: %s is incomplete or unreadable (%s), probably killed or out of disk while saving; "
                        "moved to %s and falling back to the previous checkpoint", path.name, ", ".join(problems),
                        aside.name)
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
        for reported in (False, True):
            for step in eval_steps(self.out, reported):
                if step > start:
                    eval_samples_path(self.out, step, reported).unlink()
        evals = [r for r in self.curve.rows if isinstance(r.get("accuracy"), (int, float))]
        for r in evals:  # the same decisions: a rollback's mark restarts the detector where the run did
            self.detector.update(r["step"], r["accuracy"], self._eval_n(r))
            if r.get("intervention") == "rollback" and r.get("rollback_to") is not None:
                self.detector.restart(r["rollback_to"])
        self.interventions = intervention_marks(self.curve.rows)
        self.snapshots.reconcile(start)
        self.peak.seed_from_curve(evals)
        self.reported = {int(r["step"]): e for r in evals if (e := reported_eval(r, self.cfg.eval_split)) is not None}
        if self.cfg.resume:
            self.peak.reconcile(start, self.out / "checkpoints", self.model_path, self.tokenizer,
                                self._eval_n(next((r for r in evals if r["step"] == self.peak.best_step), {})),
                                self.reported.get(self.peak.best_step))

    def _restore_reference(self) -> None:
        """A resumed run's reference model as its checkpoint left it (reset by a rollback, or synced)."""
        path = self.checkpoint / REF_MODEL if self.checkpoint is not None else None
        ref = getattr(self.trainer, "ref_model", None)
        if path is not None and path.is_file() and ref is not None:
            import torch

            ref.load_state_dict(torch.load(path, weights_only=True))

    def _eval_n(self, row: dict) -> int:
        """Questions of an eval row (older curves lack the column: the selection split's size)."""
        n = row.get("n")
        return int(n) if isinstance(n, (int, float)) and n >= 1 else len(self.select_questions)

    def save_state(self, checkpoint: Path, step: int) -> None:
        """The harness state a resume needs, into the checkpoint folder just saved (HarnessCallback.on_save)."""
        if not checkpoint.is_dir():
            return
        state = {"step": step, "train_env": self.train_env.state_dict(), "eval_env": self.eval_env.state_dict(),
                 "fault_monitor": self.monitor.state_dict()}
        ref = getattr(self.trainer, "ref_model", None) if self.trainer is not None else None
        if ref is not None and (self.interventions or self.cfg.sync_ref_model):  # it differs from the initial model
            import torch

            torch.save(ref.state_dict(), checkpoint / REF_MODEL)
        atomic_write_text(checkpoint / HARNESS_STATE, json.dumps(state, sort_keys=True) + "\n")
        self.snapshots.prune(step)

    def _build_trainer(self, start: int) -> None:
        from harness.train import reporting
        from harness.train.build import make_trainer
        from harness.train.callbacks import HarnessCallback

        reporting.prepare(self.cfg.report_to or [], self.out)
        self.callback = HarnessCallback(self, start_step=start)
        self.trainer = make_trainer(self.cfg, self.resolved, self.out, self.model_path, self.tokenizer,
                                    self.dataset, self.rollout, [self.callback, *self.extra_callbacks])
        reporting.attach(self.trainer, self.cfg.report_to or [], self.out)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model, step: int) -> dict:
        """The selection split through the same code as ``harness run`` (fixed seed and noise; greedy unless
        ``--eval-temperature``): the curve's metrics at ``step``."""
        self.last_metrics = self._evaluate_split(model, step, self.select_questions, reported=False)
        change = self.sketch.change(model) if self.sketch is not None else None
        self._write_results()
        return {**eval_columns(self.last_metrics), "weight_change": change}

    def _evaluate_split(self, model, step: int, questions: list, *, reported: bool) -> dict:
        """Play ``questions`` (``--eval-samples`` times each), score them, write their eval samples; the metrics."""
        from harness.core.results import JsonlAppender
        from harness.policies.hf import HFPolicy, SamplingConfig

        t0 = time.perf_counter()
        cfg = self.cfg
        was_training = model.training
        policy = HFPolicy(cfg.model, device=str(model.device), model=model, tokenizer=self.tokenizer,
                          sampling=SamplingConfig(temperature=cfg.eval_temperature, seed=cfg.seed),
                          batch_size=cfg.eval_batch_size)
        episodes = []
        try:
            for s in range(cfg.eval_samples):
                if cfg.eval_samples > 1:  # each sample its own noise and sampling stream (one sample: as always)
                    self.eval_env.reseed(sample_seed(cfg.seed, s))
                    policy.reseed(sample_seed(cfg.seed, s))
                for ep in self.eval_env.rollout(policy, questions):
                    ep.sample = s
                    episodes.append(ep)
        finally:
            self.eval_env.reseed(cfg.seed)
            model.train(was_training)
        for ep in episodes:
            ep.rewards = score_episode(ep, self.resolved.weights, self.resolved.semantics)
        path = eval_samples_path(self.out, step, reported)
        path.unlink(missing_ok=True)
        with JsonlAppender(path) as sink:
            for ep in episodes:
                sink.write({**ep.to_dict(), "step": step})
        took = time.perf_counter() - t0
        self.timing["eval_s"] += took
        self.timing["eval_reported_s" if reported else "eval_selection_s"] += took
        return compute_metrics(episodes)

    def _start_sketch(self) -> None:
        """The step-0 sample of the trainable weights: kept in the run directory, so a resumed run measures
        ``weight_change`` from the same start (a run resumed from a record without one measures from its resume)."""
        path = self.out / START_FILE
        self.sketch = WeightSketch.load(path) if self.cfg.resume and path.is_file() else None
        if self.sketch is None:
            self.sketch = WeightSketch.take(self.trainer.model)
            self.sketch.save(path)

    def after_eval(self, model, step: int, metrics: dict, optimizer=None, scheduler=None) -> str | None:
        """Keep the model when this eval of the selection split is the best so far; evaluate the reported
        split where the protocol says (a new best, the end, or every eval), its columns added to ``metrics``;
        then the stopping rules. Returns the stop status when one fires, ``"rollback"`` when the run went back
        to its peak (``metrics`` then carries the curve's marks), else None."""
        acc, n = metrics.get("accuracy"), int(metrics.get("n") or 0)
        if acc is None or n < 1:
            return None
        best = self.peak.is_new_best(acc)
        decision = self.detector.update(step, acc, n)
        end = step >= self.cfg.max_steps or decision.stop
        reported = None
        if best or end or self.cfg.eval_reported == "every":
            got = (self.last_metrics if self.optimistic
                   else self._evaluate_split(model, step, self.eval_questions, reported=True))
            metrics.update(reported_columns(got))
            reported = self.reported[step] = reported_eval({"step": step, **metrics}, self.cfg.eval_split)
        if self.peak.consider(model, self.tokenizer, step, acc, n, self.model_path, reported):
            self.snapshots.save(step, acc, model, optimizer)
        if reported is not None:
            self._write_results()
        if not decision.stop:
            return None
        if decision.action == "collapse" and self.cfg.collapse_action == "rollback" and optimizer is not None:
            if len(self.interventions) < self.cfg.max_rollbacks and decision.peak.step in self.snapshots.steps():
                metrics.update(self._rollback(model, optimizer, scheduler, step, decision))
                return "rollback"
            log.warning("no rollback left (%d of %d done): stopping", len(self.interventions), self.cfg.max_rollbacks)
        log.warning("stopping at step %d: %s", step, decision.reason)
        return STOP_STATUS[decision.action]

    def _rollback(self, model, optimizer, scheduler, step: int, decision) -> dict:
        """Back to the peak's weights and optimiser state, reference reset, learning rate scaled (see
        harness.train.rollback); the curve marks of this eval."""
        from harness.train.rollback import restore_optimizer, scale_learning_rate

        to = int(decision.peak.step)
        weights, optim_state, _ = self.snapshots.load(to)
        model.load_state_dict(weights)
        restore_optimizer(optimizer, optim_state)
        scale_learning_rate(optimizer, scheduler, self.cfg.rollback_lr_factor)
        ref = getattr(self.trainer, "ref_model", None)
        if ref is not None:
            ref.load_state_dict(weights)
        self.detector.restart(to)
        scale = self.cfg.rollback_lr_factor ** (len(self.interventions) + 1)
        mark = {"step": step, "action": "rollback", "to_step": to, "lr_scale": scale}
        self.interventions.append(mark)
        log.warning("rollback %d of %d at step %d: %s; back to step %d, learning rate x%g", len(self.interventions),
                    self.cfg.max_rollbacks, step, decision.reason, to, scale)
        return {"intervention": "rollback", "rollback_to": to, "lr_scale": scale}

    def report_eval(self, step: int) -> None:
        """Send the eval of ``step`` to the --report-to backends (harness.train.reporting), with the peak so
        far and whether the online collapse detector fires at it (whether or not it stops the run)."""
        if not self.cfg.report_to or self.trainer is None or not self.last_metrics:
            return
        from harness.stats.detect import collapse_evidence
        from harness.train.reporting import eval_logs, send

        d, points = self.detector.decision, self.detector.points
        peak = d.peak if d is not None else None
        alarm = bool(peak is not None and len(points) > 1
                     and collapse_evidence(points, len(points) - 1, peak, self.detector.config))
        send(self.trainer, eval_logs(self.last_metrics, peak_step=peak.step if peak else None,
                                     peak_accuracy=peak.accuracy if peak else None,
                                     new_peak=peak is not None and peak.step == step, collapse_alarm=alarm))

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
                self.after_eval(self.trainer.model, 0, metrics)
                self.report_eval(0)
                self.curve.upsert(0, {**metrics, "wall_time": self.elapsed()})
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
                try:
                    self._write_results()
                except OSError as w:  # the disk that failed the step may fail the record too: say it once
                    log.error("the failed run's record could not be written either (%s)", w.strerror or w)
                failure = write_failure(e, self.out / "checkpoints")
                if failure is not None:
                    raise failure from None
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
            final=Final(step=last["step"], accuracy=last["accuracy"], reported=self.reported.get(last["step"]))
            if last else None,
            faults=self.faults, interval="cluster_bootstrap" if cfg.eval_samples > 1 else "wilson",
            comparability=build_comparability(
                r.task, split=cfg.eval_split, questions=self.eval_questions, retriever=None, k=None,
                noises=[r.eval_noise], seed=cfg.seed, max_turns=r.max_turns, max_new_tokens=r.max_new_tokens,
                stop_after_action=r.stop_after_action, judge_rule=None, llm_judge=None, semantics=r.semantics,
                weights=r.weights, samples=cfg.eval_samples, temperature=cfg.eval_temperature,
                selection_split=cfg.selection_split, selection_questions=self.select_questions),
            learning=self._learning())
        self.life.write_record(rec)
        return rec

    def _peak_summary(self) -> Peak | None:
        """The best eval of the selection split with its Wilson interval, the steps tied with it and their
        pooled level, and the reported split at that step; ``checkpoint``: the ``peak/`` folder holding its
        model (None when not kept)."""
        decision = self.detector.decision
        if decision is None:
            return None
        p = decision.peak.to_dict()
        kept = self.peak.info()
        return Peak(step=p["step"], accuracy=p["accuracy"], interval=p["interval"], n=p["n"],
                    tied_steps=p["tied_steps"], level=p["level"], level_interval=p["level_interval"],
                    checkpoint="peak" if kept and kept.get("step") == p["step"] else None,
                    split=self.cfg.selection_split, reported=self.reported.get(p["step"]), optimistic=self.optimistic)

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
                        on_collapse=self.cfg.collapse_action, decision=d.action if d else None,
                        stop_step=self.detector.stop_step, reason=d.reason if d and d.stop else None,
                        evals_since_better=d.since_better if d else None, interventions=list(self.interventions))
