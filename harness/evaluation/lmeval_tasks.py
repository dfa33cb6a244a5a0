"""Apollo 3 as lm-evaluation-harness tasks: the hooks their YAMLs call, and the same eval run by the harness.

The tasks live in ``tasks/apollo3/lm_eval/`` (``apollo3_closedbook``, ``apollo3_goldcontext``,
``apollo3_rag``, tag ``apollo3``) and reach code only through two hooks:

``custom_dataset: !function harness.evaluation.lmeval_tasks.load_dataset``
    the harness's own loader (pinned, checksummed files; the paper's split), one row per question,
    with the context the variant shows: none, the gold chunk(s), or the top-k BM25 results for
    the question, formatted exactly as ``harness run`` formats search results.
``process_results: !function harness.evaluation.lmeval_tasks.process_results``
    the answer is what the reply holds inside ``<answer>`` (:func:`extract_answer`, the rule of
    the agentic loop), scored by :func:`harness.scoring.judge.judge`: ``exact_match``, ``f1`` and ``correct``.

:func:`run_single_shot` evaluates the same rendered prompts with the harness's own episode loop (a
one-turn environment, :class:`harness.environment.env.OneTurnEnvironment`, played by
:class:`harness.policies.hf.HFPolicy`, greedy, stopping at the task's closing tags) and the same
scorer, so its numbers can be checked against ``lm_eval ... --apply_chat_template``
(``tests/test_lmeval.py``).

Nothing heavy is imported at module level: torch, transformers and ``datasets`` load inside functions.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.core.config import shipped_tasks_dir

log = logging.getLogger(__name__)

#: The harness task the lm-eval tasks belong to: their YAMLs sit in its folder (``lm_eval/``) and their
#: rows are its questions, corpus and split (the one place that names it; the hooks' default ``task``).
LMEVAL_TASK = "apollo3"
#: The lm-eval task folder; pass it to ``lm_eval --include_path`` (``harness lmeval path`` prints it).
#: The shipped one (the checkout's ``tasks/``, or the copy inside an installed wheel), whatever
#: ``$HARNESS_TASKS_DIR`` says: these YAMLs bind to this module's hooks.
LMEVAL_TASK_DIR = shipped_tasks_dir() / LMEVAL_TASK / "lm_eval"
VARIANTS: tuple[str, ...] = ("closedbook", "goldcontext", "rag")
CONTEXTS: tuple[str, ...] = ("none", "gold", "bm25")
METRICS: tuple[str, ...] = ("exact_match", "f1", "correct")


# ----------------------------------------------------------------------------- dataset hook


@lru_cache(maxsize=8)
def _rows(task_name: str, context: str, k: int, data_dir: str | None) -> dict[str, list[dict[str, Any]]]:
    from harness.core.config import load_task
    from harness.data.loading import load_task_data
    from harness.data.search import SearchRequest, SearchTool

    task = load_task(task_name)
    data = load_task_data(task, data_dir)
    pr = task.prompt
    tool = None
    if context == "bm25":
        from harness.data.retrieval import build_retriever

        retriever = build_retriever(task.retrieval, data.corpus, "bm25")
        tool = SearchTool(retriever, data.corpus, k=k, result_template=pr.result,  # noise-free
                          result_separator=pr.result_separator, no_results=pr.no_results)

    def passages(chunk_ids: list[str]) -> str:
        body = "\n\n".join(pr.result.format(rank=i + 1, text=data.corpus.text(c)) for i, c in enumerate(chunk_ids))
        return pr.information.format(results=body)

    out: dict[str, list[dict[str, Any]]] = {}
    # lm-eval's "train" is the few-shot source: every non-test question (train+dev), as before dev existed
    for split, ours in (("test", "test"), ("train", "train+dev")):
        questions = data.split(ours)
        if context == "gold":
            shown = [list(q.gold_chunk_ids) for q in questions]
        elif context == "bm25":
            results = tool.search_batch([SearchRequest(q.question, q.qid, q.gold_chunk_ids) for q in questions])
            shown = [[r.chunk_id for r in res.results] for res in results]
        else:
            shown = [[] for _ in questions]
        out[split] = [
            {"qid": q.qid, "line": q.line, "question": q.question, "answer": q.answer,
             "gold_chunk_ids": list(q.gold_chunk_ids), "context_chunk_ids": ids,
             "gold_in_context": bool(set(ids) & set(q.gold_chunk_ids)),
             "context": passages(ids) if ids else ""}
            for q, ids in zip(questions, shown)
        ]
    return out


def build_docs(context: str = "none", k: int = 3, task: str = LMEVAL_TASK,
               data_dir: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The rows of one variant as plain dicts: ``{"test": [...32], "train": [...286]}``.

    ``context`` is ``none`` (closed book), ``gold`` (the question's gold chunks) or ``bm25`` (the
    top ``k`` BM25 results for the question, noise-free). Each row has ``qid``, ``question``,
    ``answer``, ``context`` (an ``<information>`` block, or ``""``), ``context_chunk_ids`` and
    ``gold_in_context``.

    Example (needs the data):
        >>> docs = build_docs("gold")                                   # doctest: +SKIP
        >>> len(docs["test"]), docs["test"][0]["gold_in_context"]      # doctest: +SKIP
        (32, True)
    """
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; valid: {', '.join(CONTEXTS)}")
    return _rows(task, context, int(k), str(data_dir) if data_dir else None)


def load_dataset(context: str = "none", k: int = 3, task: str = LMEVAL_TASK, data_dir: str | None = None,
                 **_metadata: Any):
    """lm-eval ``custom_dataset`` hook: a ``datasets.DatasetDict`` with ``test`` and ``train``.

    lm-eval calls it with the task's ``dataset_kwargs`` and ``metadata`` (plus anything given with
    ``--metadata``) as keyword arguments; unknown ones are ignored.
    """
    import datasets

    return datasets.DatasetDict({split: datasets.Dataset.from_list(rows)
                                 for split, rows in build_docs(context, k, task, data_dir).items()})


# ----------------------------------------------------------------------------- scoring hook


def extract_answer(reply: str) -> str | None:
    """The answer of a single-shot reply: the body of its first ``<answer>``, as in the agentic loop.

    lm-eval cuts the stop string (``</answer>``) off, so an open tag at the end is closed first;
    a reply with no answer (none, or a search) gives ``None``, which the judge never accepts.

    >>> extract_answer("<think>the report says</think><answer>Fra Mauro")
    'Fra Mauro'
    >>> extract_answer("<answer>55:54:53</answer> trailing text")
    '55:54:53'
    >>> extract_answer("<search>oxygen tank") is None, extract_answer("Fra Mauro") is None
    (True, True)
    """
    from harness.episode.protocol import parse_turn, restore_stop, truncate_after_action

    action = parse_turn(truncate_after_action(restore_stop(reply or "")))
    return action.answer if action.kind == "answer" else None


def score(reply: str, gold: str, rule: str = "default", f1_threshold: float = 0.6) -> dict[str, float]:
    """Judge one reply: ``exact_match``, ``f1`` and ``correct`` (the judge's verdict) as floats.

    >>> score("<answer>the lunar module</answer>", "Lunar module")
    {'exact_match': 1.0, 'f1': 1.0, 'correct': 1.0}
    >>> score("It was the lunar module.", "Lunar module")   # no <answer>: no answer
    {'exact_match': 0.0, 'f1': 0.0, 'correct': 0.0}
    """
    from harness.scoring.judge import judge

    j = judge(extract_answer(reply), gold, rule=rule, f1_threshold=f1_threshold)
    return {"exact_match": float(j.em), "f1": float(j.f1), "correct": float(j.correct)}


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """lm-eval ``process_results`` hook: score the (filtered) reply against ``doc["answer"]``."""
    return score(results[0], doc["answer"])


# ----------------------------------------------------------------------------- task config


def task_config(variant: str) -> dict[str, Any]:
    """The merged YAML of ``apollo3_<variant>`` as data (``!function`` values kept as strings)."""

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")

    from harness.core import safeyaml

    class Loader(safeyaml.StrictLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))

    def load(path: Path) -> dict[str, Any]:
        cfg = safeyaml.load(path.read_text(encoding="utf-8"), Loader)
        merged: dict[str, Any] = {}
        inc = cfg.pop("include", None)
        for name in [inc] if isinstance(inc, str) else (inc or []):
            merged.update(load(path.parent / name))
        merged.update(cfg)
        return merged

    return load(LMEVAL_TASK_DIR / f"{LMEVAL_TASK}_{variant}.yaml")


def render_messages(cfg: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, str]]:
    """The chat lm-eval builds for a zero-shot doc with ``--apply_chat_template``: system, user."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return [{"role": "system", "content": env.from_string(cfg["description"]).render(**doc)},
            {"role": "user", "content": env.from_string(cfg["doc_to_text"]).render(**doc)}]


# ----------------------------------------------------------------------------- harness-side run


def run_single_shot(model: str, variant: str = "goldcontext", *, limit: int | None = None,
                    max_gen_toks: int | None = None, batch_size: int = 1, data_dir: str | None = None,
                    dtype: str = "auto", device: str | None = None, policy=None) -> dict[str, Any]:
    """Evaluate ``apollo3_<variant>`` with the harness's HF backend instead of lm-eval.

    Same rows, same prompt (the task's ``description`` as system message and ``doc_to_text`` as user
    message through the tokenizer's chat template, like ``lm_eval --apply_chat_template``), greedy
    decoding stopping at the task's closing tags, the same scorer. The episodes are played by the
    harness's loop in a one-turn environment (:class:`~harness.environment.env.OneTurnEnvironment`).
    ``model`` is a path, a hub id or ``tiny``. Returns ``{"task", "model", "n", "metrics": {exact_match,
    f1, correct}, "samples"}``; each sample holds ``qid``, ``prompt`` (the messages), ``reply``,
    ``answer``, ``gold`` and scores. Pass ``policy`` (any :class:`~harness.environment.env.Policy`, e.g. an
    :class:`~harness.policies.hf.HFPolicy`) to reuse a loaded model across variants.
    """
    from harness.core.config import load_task
    from harness.data.loading import Question, load_task_data
    from harness.environment.env import OneTurnEnvironment
    from harness.models.resolve import resolve_model_path
    from harness.policies.hf import HFPolicy
    from harness.scoring.judge import judge

    cfg = task_config(variant)
    kw = cfg.get("dataset_kwargs") or {}
    name = kw.get("task", LMEVAL_TASK)
    task = load_task(name)
    docs = build_docs(kw.get("context", "none"), kw.get("k", 3), name, data_dir)[cfg.get("test_split", "test")][:limit]
    if policy is None:
        corpus = load_task_data(task, data_dir).corpus if model == "tiny" else None
        policy = HFPolicy(resolve_model_path(model, corpus), device=device, dtype=dtype, batch_size=batch_size)
    max_new = int(max_gen_toks or cfg["generation_kwargs"]["max_gen_toks"])
    env = OneTurnEnvironment(task, lambda pred, gold: judge(pred, gold).to_dict(), max_new_tokens=max_new)
    chats = [render_messages(cfg, d) for d in docs]
    episodes = [env.episode(Question(d["qid"], d["line"], d["question"], d["answer"], (),
                                     tuple(d["gold_chunk_ids"])), c)
                for d, c in zip(docs, chats)]
    env.run_episodes(policy, episodes)
    samples = []
    for doc, chat, ep in zip(docs, chats, episodes):
        j = ep.judge
        samples.append({"qid": doc["qid"], "prompt": chat, "reply": ep.turns[0].text, "answer": ep.answer,
                        "gold": doc["answer"], "gold_in_context": doc["gold_in_context"],
                        "exact_match": float(j["em"]), "f1": float(j["f1"]), "correct": float(j["correct"])})
    n = len(samples)
    metrics = {m: (sum(s[m] for s in samples) / n if n else float("nan")) for m in METRICS}
    return {"task": cfg["task"], "model": model, "n": n, "metrics": metrics, "samples": samples}
