"""The comparability record of a run (:class:`harness.core.record.Comparability`), built from what it played.

``harness run`` and ``harness train`` both fill one in ``results.json``; ``harness report`` prints every
field that differs between the runs it compares before comparing anything (:mod:`harness.report.protocol`).
Built here, below evaluation and training, from the task, its loaded data and the options the run resolved.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from harness.core.config import NoiseConfig, RewardWeights, TaskConfig
from harness.core.record import Comparability
from harness.data.loading import Question

#: How a run seeds what it draws; a change of scheme makes two runs' draws incomparable.
SEED_SCHEME = ("v1: search noise from sha256(seed|question|call index); a task environment's per-episode values "
               "from (seed, question, episode count); sample s > 0 of K played with sample_seed(seed, s)")
#: Keys of a task's dump that say where it was read from, not what it is.
_WHERE = ("source",)


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def task_sha256(task: TaskConfig) -> str:
    """A hash of everything the task's file says (not where it was read from, nor the data it loaded).

    >>> from harness.core.config import load_task
    >>> a, micro = task_sha256(load_task("apollo3")), task_sha256(load_task("apollo3_micro"))
    >>> a == task_sha256(load_task("apollo3")) != micro
    True
    """
    dump = task.model_dump()
    for key in _WHERE:
        dump.pop(key, None)
    dump.get("data", {}).pop("loaded", None)
    return _sha(dump)


def prompt_sha256(task: TaskConfig) -> str:
    """A hash of the prompt the model sees: system, user, information and result templates, and the tags."""
    p, pr = task.protocol, task.prompt
    return _sha({"prompt": pr.model_dump(), "tags": [p.think_tag, p.search_tag, p.answer_tag, p.information_tag]})


def build_comparability(task: TaskConfig, *, split: str, questions: Sequence[Question], retriever: str | None,
                        k: int | None, noises: Sequence[NoiseConfig], seed: int, max_turns: int | None,
                        max_new_tokens: int | None, stop_after_action: bool, judge_rule: str | None,
                        llm_judge: str | None, semantics: str, weights: RewardWeights, samples: int = 1,
                        temperature: float = 0.0, selection_split: str | None = None,
                        selection_questions: Sequence[Question] | None = None) -> Comparability:
    """The record of one run; ``None`` options take the task's values (as the run itself does)."""
    r, p = task.retrieval, task.protocol
    name = retriever or r.retriever
    return Comparability(
        task=task.name, task_version=task.version, task_sha256=task_sha256(task),
        data={table: str(info.get("sha256")) for table, info in task.data.loaded.items()},
        split=split, split_lines=sorted(q.line for q in questions),
        selection_split=selection_split,
        selection_lines=sorted(q.line for q in selection_questions) if selection_questions is not None else None,
        retriever=name, embedding_model=r.dense_model if name == "dense" else None, k=k or r.k,
        result_format=task.prompt.result, prompt_profile=getattr(task, "profile", None),
        prompt_sha256=prompt_sha256(task),
        noise_levels=sorted({float(n.level) for n in noises}),
        noise_modes=sorted({m for n in noises if n.level > 0 for m in n.modes}),
        seed=seed, seed_scheme=SEED_SCHEME, max_turns=max_turns or p.max_turns,
        max_new_tokens=max_new_tokens or p.max_new_tokens, max_episode_tokens=p.max_episode_tokens,
        stop_after_action=stop_after_action,
        judge=f"{judge_rule or task.judge.rule} (f1 >= {task.judge.f1_threshold:g})", llm_judge=llm_judge,
        reward_semantics=semantics, reward_weights=weights.active(), samples=samples, temperature=temperature)
