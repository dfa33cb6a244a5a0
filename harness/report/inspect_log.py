"""A run's episodes as an Inspect AI eval log, for ``inspect view`` (``harness export RUN --format inspect``).

The log is built from ``inspect_ai.log``'s own types and written with its ``write_eval_log`` (``.eval``
or ``.json`` by the file's suffix), so Inspect's viewer and ``read_eval_log`` read it like any other.
One log holds one policy at one noise level (Inspect's unit: one task, one model); a run with several
is exported one log per pair into a folder, or one pair chosen with ``--policy`` / ``--noise``. A
training run exports the held-out episodes of one eval (``--step``; default: its peak).

Per episode, one ``EvalSample``:

* ``id`` the question id, ``input`` the question, ``target`` the gold answer;
* ``messages`` the whole conversation (system, question, each assistant turn, each
  ``<information>`` block), ``output`` the last assistant message;
* ``scores["judge"]``: ``C`` or ``I`` with the answer and the judge's explanation (its rule and, for
  partial matches, the F1), and ``scores["llm_judge"]`` with the LLM judge's reply when the run had one;
* ``metadata``: the rewards, the retry facts (searches, queries, first gold search, gold seen, end
  reason), the noise, and the token usage of a served backend (also as ``model_usage``).

The log's results carry the run's metrics for that policy and noise level (accuracy with its
interval and every scalar retry-aware metric).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, DataError

#: Formats ``harness export --format`` writes.
FORMATS = ("inspect",)


def _score_explanation(judge: dict[str, Any] | None, answer: str | None) -> str:
    """One sentence on why the deterministic judge decided as it did.

    >>> _score_explanation({"correct": False, "rule": "f1", "f1": 0.4}, "x")
    'judge rule f1: incorrect (F1 0.40)'
    >>> _score_explanation(None, None)
    'no answer: the episode ended without one'
    """
    if answer is None:
        return "no answer: the episode ended without one"
    judge = judge or {}
    if judge.get("error"):
        return f"the judge raised: {judge['error']}"
    text = f"judge rule {judge.get('rule', '?')}: {'correct' if judge.get('correct') else 'incorrect'}"
    if isinstance(judge.get("f1"), (int, float)):
        text += f" (F1 {judge['f1']:.2f})"
    return text


def _messages(rows: list[dict], model: str):
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    out = []
    for m in rows:
        role, content = m.get("role"), m.get("content") if isinstance(m.get("content"), str) else ""
        if role == "system":
            out.append(ChatMessageSystem(content=content))
        elif role == "assistant":
            out.append(ChatMessageAssistant(content=content, model=model))
        else:
            out.append(ChatMessageUser(content=content))
    return out


def _usage(usage: dict[str, int] | None):
    from inspect_ai.model import ModelUsage

    if not usage:
        return None
    p, c = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return ModelUsage(input_tokens=p, output_tokens=c, total_tokens=p + c)


def episode_sample(row: dict[str, Any], model: str):
    """One ``EvalSample`` from a ``samples.jsonl`` (or ``eval_samples``) row."""
    from inspect_ai.log import EvalSample
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    messages = row.get("messages") or []
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "assistant"), "")
    judge = row.get("judge") or {}
    scores = {"judge": Score(value="C" if row.get("correct") else "I", answer=row.get("answer"),
                             explanation=_score_explanation(judge, row.get("answer")),
                             metadata={k: v for k, v in judge.items() if k != "llm"})}
    llm = judge.get("llm")
    if isinstance(llm, dict):
        verdict = llm.get("verdict")
        scores["llm_judge"] = Score(value="C" if verdict else ("I" if verdict is False else "N"),
                                    answer=row.get("answer"), explanation=llm.get("raw"))
    turns = row.get("turns") or []
    metadata = {
        "rewards": row.get("rewards") or {}, "n_searches": row.get("n_searches"), "queries": row.get("queries"),
        "first_gold_search": row.get("first_gold_search"), "gold_seen": row.get("gold_seen"),
        "gold_seen_by_search": [t.get("gold_seen") for t in turns if (t.get("action") or {}).get("kind") == "search"],
        "end_reason": row.get("end_reason"), "n_turns": len(turns),
        "n_generated_tokens": row.get("n_generated_tokens"), "noise": row.get("noise") or {},
        "gold_chunk_ids": row.get("gold_chunk_ids"), "error": row.get("error"),
        **({"usage": row["usage"]} if row.get("usage") else {}),
    }
    usage = _usage(row.get("usage"))
    return EvalSample(id=str(row.get("qid")), epoch=1, input=str(row.get("question", "")),
                      target=str(row.get("gold_answer", "")), messages=_messages(messages, model),
                      output=ModelOutput.from_content(model=model, content=last or ""), scores=scores,
                      metadata=metadata, model_usage={model: usage} if usage else {})


def _stable_id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:22]


def _when(text: str | None) -> str:
    if text:
        try:
            return datetime.fromisoformat(text).astimezone(timezone.utc).isoformat()
        except ValueError:
            pass
    return datetime.now(timezone.utc).isoformat()


def build_log(run_dir: Path, rows: list[dict], policy: str, noise: float, *, record=None, step: int | None = None):
    """The ``EvalLog`` of one policy at one noise level (``rows``: its episodes)."""
    from inspect_ai.log import EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults, EvalScore, EvalSpec, EvalStats
    from inspect_ai.model import GenerateConfig

    from harness.core.record import noise_key

    task = record.task.name if record else "harness"
    backend = next((m.backend for m in record.model if m.model == policy), "harness") if record else "harness"
    model = policy if "/" in policy else f"{backend}/{policy}"
    samples = [episode_sample(r, model) for r in rows]
    metrics = record.metrics(policy, noise) if record and not record.is_train else {}
    if record and record.is_train:
        metrics = record.metrics(policy, noise) if step is None or (record.final and record.final.step == step) else {}
    n = len(samples)
    acc = sum(1 for r in rows if r.get("correct")) / n if n else 0.0
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    scalars.setdefault("accuracy", acc)
    # the viewer's header shows the judge's accuracy; its interval and the retry-aware metrics are one click away
    judge_metrics = {"accuracy": EvalMetric(name="accuracy", value=scalars.pop("accuracy"))}
    scores = [EvalScore(name="judge", scorer="harness_judge", scored_samples=n, metrics=judge_metrics)]
    if scalars:
        scores.append(EvalScore(name="retry_metrics", scorer="harness_metrics", scored_samples=n,
                                metrics={k: EvalMetric(name=k, value=v) for k, v in scalars.items()}))
    cfg = record.train_options() if record else {}
    usage_total: dict[str, int] = {}
    for r in rows:
        for k, v in (r.get("usage") or {}).items():
            usage_total[k] = usage_total.get(k, 0) + int(v)
    total = _usage(usage_total)
    status = {"complete": "success", "partial": "cancelled", "failed": "error", "diverged": "error"}.get(
        record.status if record else "complete", "success")
    spec = EvalSpec(
        eval_id=_stable_id(run_dir.resolve(), policy, noise, step), run_id=_stable_id(run_dir.resolve()),
        task_id=_stable_id(task, policy, noise),
        created=_when(record.started_at if record else None), task=task,
        task_version=record.task.version if record else 0,
        task_args={"noise_level": noise, **({"step": step} if step is not None else {})},
        dataset=EvalDataset(name=task, samples=n, sample_ids=[s.id for s in samples]),
        model=model, model_base_url=cfg.get("base_url"),
        model_generate_config=GenerateConfig(temperature=cfg.get("temperature"), seed=cfg.get("seed")),
        config=EvalConfig(), packages={"retry-harness": _version()},
        metadata={"harness_run_dir": str(run_dir), "policy": policy, "noise": noise_key(noise),
                  "kind": record.kind if record else None, "git_hash": record.git_hash if record else None})
    return EvalLog(status=status, eval=spec,
                   results=EvalResults(total_samples=n, completed_samples=n, scores=scores),
                   stats=EvalStats(started_at=_when(record.started_at if record else None),
                                   completed_at=_when(record.finished_at if record else None),
                                   model_usage={model: total} if total else {}),
                   samples=samples)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("retry-harness")
    except metadata.PackageNotFoundError:
        return "unknown"


def _groups(run_dir: Path, step: int | None) -> tuple[dict[tuple[str, float], list[dict]], int | None]:
    """The run's episodes by (policy, noise level); a training run's at ``step`` (default: its peak)."""
    from harness.core.rundir import EVAL_SAMPLES, SAMPLES, eval_steps, read_eval_samples, read_samples

    if (run_dir / SAMPLES).is_file():
        if step is not None:
            raise ConfigError("--step is for a training run (harness train); this is an evaluation run")
        return read_samples(run_dir), None
    if not (run_dir / EVAL_SAMPLES).is_dir():
        raise DataError(f"{run_dir}: neither samples.jsonl (harness run) nor eval_samples/ (harness train)")
    from harness.core.record import read_record

    rec = read_record(run_dir)
    steps = eval_steps(run_dir)
    if step is None:
        step = rec.peak.step if rec.peak and rec.peak.step in steps else (steps[-1] if steps else None)
    if step is None:
        raise DataError(f"{run_dir}: the training run has no eval samples yet")
    rows = read_eval_samples(run_dir, step)
    model = rec.policies[0] if rec.policies else "model"
    level = float((rec.config.get("resolved") or {}).get("eval_noise", {}).get("level", 0.0))
    return {(model, level): rows}, step


def export_inspect(run_dir: Path | str, output: Path | str, *, policy: str | None = None, noise: float | None = None,
                   step: int | None = None) -> list[Path]:
    """Write the run's episodes as Inspect eval logs; returns the files written.

    ``output`` ending in ``.eval`` or ``.json`` is one file (the run, after ``policy``/``noise``, must
    hold one policy at one noise level); anything else is a folder that gets one
    ``<policy>_noise-<level>.eval`` per pair.
    """
    try:
        from inspect_ai.log import write_eval_log
    except ImportError:
        raise ConfigError("--format inspect needs inspect_ai: pip install 'retry-harness[inspect]'") from None
    from harness.core.io import slug
    from harness.core.record import read_record

    run_dir, output = Path(run_dir), Path(output)
    groups, step = _groups(run_dir, step)
    chosen = {k: v for k, v in groups.items()
              if (policy is None or k[0] == policy) and (noise is None or k[1] == float(noise))}
    if not chosen:
        listed = ", ".join(f"{p} @ noise {n:g}" for p, n in sorted(groups))
        raise ConfigError(f"{run_dir}: no episodes of that policy/noise (it holds: {listed})")
    try:
        record = read_record(run_dir)
    except DataError:
        record = None  # a killed run has episodes but no record yet: exported without the run's metrics
    single = output.suffix in (".eval", ".json")
    if single and len(chosen) > 1:
        listed = ", ".join(f"{p} @ noise {n:g}" for p, n in sorted(chosen))
        raise ConfigError(f"{run_dir} holds {len(chosen)} policy/noise pairs ({listed}): choose one with --policy and "
                          "--noise, or give -o a folder to get one log per pair")
    written = []
    for (pol, level), rows in sorted(chosen.items()):
        log = build_log(run_dir, rows, pol, level, record=record, step=step)
        path = output if single else output / f"{slug(pol, 60, keep='tail')}_noise-{level:g}.eval"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{path.suffix}")  # written whole, then renamed into place
        write_eval_log(log, str(tmp), format="json" if path.suffix == ".json" else "eval")
        tmp.replace(path)
        written.append(path)
    return written
