"""Retry-aware metrics: how a model searches, not only whether it is right.

All metrics are pure functions of a list of episodes. Conditional rates are ``None`` when their
condition never occurs (e.g. ``recovery`` when no first search missed the gold passage), and the
number of episodes they are computed on is reported beside them (``n_<metric>``).

=====================  ===================================================================
metric                 definition (over episodes; "gold seen" = the gold passage was shown)
=====================  ===================================================================
accuracy               P(correct); with its Wilson 95% interval (``accuracy_ci_low/high``)
answer_rate            P(episode ended with an answer)
searches_per_episode   mean number of searches (``searches_hist``: distribution)
retry_rate             P(>= 2 searches)
first_search_gold      P(gold seen in the first search | >= 1 search)
any_search_gold        P(gold seen in any search)
persistence            P(searched again | first search missed gold)
recovery               P(correct | first search missed gold)
wasted_retries         P(searched again after gold was already seen | gold seen)
premature_answer       P(answered before gold was seen | answered)
unsupported_wrong      P(wrong and gold never seen)
give_up_rate           P(ended without an answer: no action, max turns or token budget)
format_validity        fraction of assistant turns that are well formed
mean_turns             mean assistant turns
mean_generated_tokens  mean generated tokens per episode
query_diversity        mean over episodes with >= 2 searches of unique queries / searches
redundant_search_rate  sum_e R_e / sum_e S_e: the share of searches whose results add no passage not
                       already shown in the episode (R_e: searches of episode e whose shown passages,
                       by chunk id, all appeared in an earlier search of e; S_e its searches; a search
                       that returns nothing adds nothing; ``n_redundant_search_rate`` = sum_e S_e)
gold_gain_per_search   sum_e G_e / sum_e S_e: the share of searches that first surface a gold passage
                       (G_e = 1 when a search of e showed gold: the first such search; n = sum_e S_e)
over_search            with a closed-book reference run of the same model (``harness run
                       --closed-book-ref RUN``, :func:`search_need`): P(searched | its closed-book
                       answer to the question was correct); ``n_over_search`` such episodes
under_search           P(answered without searching | its closed-book answer was wrong);
                       ``n_under_search`` such episodes. A question's closed-book answer is correct
                       when at least half of the reference's samples of it are
reward_<name>          mean of each reward (``reward_<name>_std`` its standard deviation)
error_rate             P(episode ended by an error)
judge_error_rate       P(the judge raised: such answers count as wrong, and are counted here)
n_reward_errors        number of (episode, reward) pairs whose reward function raised (left out
                       of that reward's mean, never scored 0)
=====================  ===================================================================

With K samples per question (``harness run --samples K``: episodes with a nonzero ``sample`` index) the
table is computed over all K x n episodes, ``accuracy`` is avg@k, every proportion of
:data:`RATES` gets a cluster-bootstrap interval over questions (``<metric>_ci_low/high``; accuracy's
replaces its Wilson interval), and avg@k, pass@k, maj@k and each question's success rate are added
(:mod:`harness.scoring.samples`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from harness.episode.record import Episode
from harness.scoring.normalize import normalize_query
from harness.scoring.samples import Rate, clustered_rates, sample_metrics, samples_per_question
from harness.stats.intervals import wilson


def _rate(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def searched_after_gold(ep: Episode) -> bool:
    i = ep.first_gold_search
    return i is not None and ep.n_searches > i + 1


def answered_before_gold(ep: Episode) -> bool:
    return ep.answer is not None and not ep.gold_seen


def _passage_ids(turn) -> set[str]:
    """The passages a search showed, by chunk id (by text where the id is unknown: a replayed chat)."""
    return {r.chunk_id or r.text for r in turn.search.results} if turn.search is not None else set()


def redundant_searches(ep: Episode) -> int:
    """Searches of ``ep`` whose results add no passage not already shown in the episode.

    >>> from harness.data.loading import Question
    >>> from harness.data.search import SearchResult, ShownResult
    >>> ep = Episode.from_messages([{"role": "assistant", "content": "<search>a</search>"}] * 3,
    ...                            Question("q1", 0, "?", "x", ("gold",), ("c9",)))
    >>> for t, ids in zip(ep.turns, (["c1", "c2"], ["c2"], ["c2", "c3"])):
    ...     t.search = SearchResult("a", tuple(ShownResult(c, c, i, 0.0) for i, c in enumerate(ids)))
    >>> redundant_searches(ep)  # the second shows only c2, already shown by the first
    1
    """
    seen: set[str] = set()
    redundant = 0
    for t in ep.searches:
        shown = _passage_ids(t)
        redundant += shown <= seen
        seen |= shown
    return redundant


#: Every proportion of the table as (denominator, numerator) counts of one episode: the point estimate is
#: sum of numerators / sum of denominators, and a K-sample run's cluster interval resamples these by question.
RATES: dict[str, Rate] = {
    "accuracy": (lambda ep: 1, lambda ep: ep.correct),
    "answer_rate": (lambda ep: 1, lambda ep: ep.answer is not None),
    "retry_rate": (lambda ep: 1, lambda ep: ep.n_searches >= 2),
    "first_search_gold": (lambda ep: ep.n_searches >= 1, lambda ep: ep.n_searches >= 1 and ep.first_gold_search == 0),
    "any_search_gold": (lambda ep: 1, lambda ep: ep.gold_seen),
    "persistence": (lambda ep: _missed_first(ep), lambda ep: _missed_first(ep) and ep.n_searches >= 2),
    "recovery": (lambda ep: _missed_first(ep), lambda ep: _missed_first(ep) and ep.correct),
    "wasted_retries": (lambda ep: ep.gold_seen, searched_after_gold),
    "premature_answer": (lambda ep: ep.answer is not None, answered_before_gold),
    "unsupported_wrong": (lambda ep: 1, lambda ep: not ep.correct and not ep.gold_seen),
    "give_up_rate": (lambda ep: 1, lambda ep: ep.end_reason in ("no_action", "max_turns", "token_budget")),
    "error_rate": (lambda ep: 1, lambda ep: ep.end_reason == "error"),
    "redundant_search_rate": (lambda ep: ep.n_searches, redundant_searches),
    "gold_gain_per_search": (lambda ep: ep.n_searches, lambda ep: ep.gold_seen),
}


def _missed_first(ep: Episode) -> bool:
    return ep.n_searches >= 1 and ep.first_gold_search != 0


def _ratio(episodes: list[Episode], rate: Rate) -> tuple[float | None, int]:
    den, num = rate
    d = sum(den(ep) for ep in episodes)
    return (sum(num(ep) for ep in episodes) / d if d else None), int(d)


def compute_metrics(episodes: list[Episode]) -> dict[str, float | int | None | dict]:
    """Every metric of the table above for one set of episodes (one run at one noise level)."""
    n = len(episodes)
    if n == 0:
        return {"n": 0}
    correct = [ep.correct for ep in episodes]
    lo, hi = wilson(sum(correct), n)  # a K-sample run replaces it with the cluster interval (below)
    searched = [ep for ep in episodes if ep.n_searches >= 1]
    missed_first = [ep for ep in searched if ep.first_gold_search != 0]
    seen = [ep for ep in episodes if ep.gold_seen]
    answered = [ep for ep in episodes if ep.answer is not None]
    multi = [ep for ep in episodes if ep.n_searches >= 2]
    turns = [t for ep in episodes for t in ep.turns]
    m: dict[str, float | int | None | dict] = {
        "n": n,
        "accuracy": float(np.mean(correct)),
        "accuracy_ci_low": lo,
        "accuracy_ci_high": hi,
        "answer_rate": float(np.mean([ep.answer is not None for ep in episodes])),
        "searches_per_episode": float(np.mean([ep.n_searches for ep in episodes])),
        "searches_hist": {str(k): v for k, v in sorted(Counter(ep.n_searches for ep in episodes).items())},
        "retry_rate": float(np.mean([ep.n_searches >= 2 for ep in episodes])),
        "first_search_gold": _rate([ep.first_gold_search == 0 for ep in searched]),
        "any_search_gold": float(np.mean([ep.gold_seen for ep in episodes])),
        "persistence": _rate([ep.n_searches >= 2 for ep in missed_first]),
        "n_persistence": len(missed_first),
        "recovery": _rate([ep.correct for ep in missed_first]),
        "n_recovery": len(missed_first),
        "wasted_retries": _rate([searched_after_gold(ep) for ep in seen]),
        "n_wasted_retries": len(seen),
        "premature_answer": _rate([answered_before_gold(ep) for ep in answered]),
        "n_premature_answer": len(answered),
        "unsupported_wrong": float(np.mean([(not ep.correct) and not ep.gold_seen for ep in episodes])),
        "give_up_rate": float(np.mean([ep.end_reason in ("no_action", "max_turns", "token_budget")
                                       for ep in episodes])),
        "error_rate": float(np.mean([ep.end_reason == "error" for ep in episodes])),
        "format_validity": float(np.mean([t.action.well_formed for t in turns])) if turns else None,
        "mean_turns": float(np.mean([len(ep.turns) for ep in episodes])),
        "mean_generated_tokens": float(np.mean([ep.n_generated_tokens for ep in episodes])),
        "query_diversity": _rate_mean([len({normalize_query(q) for q in ep.queries}) / ep.n_searches for ep in multi]),
        "end_reasons": dict(Counter(ep.end_reason or "running" for ep in episodes)),
    }
    for name in ("redundant_search_rate", "gold_gain_per_search"):
        m[name], m[f"n_{name}"] = _ratio(episodes, RATES[name])
    m["judge_error_rate"] = float(np.mean([bool(ep.judge) and ep.judge.get("rule") == "error" for ep in episodes]))
    names = sorted({k for ep in episodes for k in ep.rewards})
    m["n_reward_errors"] = sum(v is None for ep in episodes for k, v in ep.rewards.items() if k != "total")
    for name in names:
        vals = np.array([np.nan if ep.rewards.get(name) is None else ep.rewards[name] for ep in episodes], dtype=float)
        ok = vals[~np.isnan(vals)]
        m[f"reward_{name}"] = float(ok.mean()) if ok.size else None
        m[f"reward_{name}_std"] = float(ok.std()) if ok.size else None
    if samples_per_question(episodes) > 1:
        m.update(clustered_rates(episodes, RATES))
        m.update(sample_metrics(episodes))
    return m


def search_need(episodes: list[Episode], closed_book: dict[str, float]) -> dict[str, float | int | None]:
    """Over- and under-search of ``episodes`` against the same model's closed-book success rate per
    question (``closed_book``: question id -> share of its closed-book samples answered correctly; a
    question is "known" when that share is at least one half). Questions without a closed-book answer
    are left out. With K samples per question the rates get cluster intervals like every other rate.

    >>> from harness.data.loading import Question
    >>> def ep(qid, searched):
    ...     text = "<search>x</search>" if searched else "<answer>y</answer>"
    ...     q = Question(qid, 0, "?", "y", ("",), ())
    ...     return Episode.from_messages([{"role": "assistant", "content": text}], q)
    >>> r = search_need([ep("a", True), ep("b", False), ep("c", True), ep("d", False)],
    ...                 {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0})
    >>> r["over_search"], r["n_over_search"], r["under_search"], r["n_under_search"]
    (0.5, 2, 0.5, 2)
    """
    known = {q for q, rate in closed_book.items() if rate >= 0.5}
    eps = [ep for ep in episodes if ep.question.qid in closed_book]
    rates: dict[str, Rate] = {
        "over_search": (lambda ep: ep.question.qid in known,
                        lambda ep: ep.question.qid in known and ep.n_searches >= 1),
        "under_search": (lambda ep: ep.question.qid not in known,
                         lambda ep: ep.question.qid not in known and ep.n_searches == 0 and ep.answer is not None),
    }
    out: dict[str, float | int | None] = {}
    for name, rate in rates.items():
        out[name], out[f"n_{name}"] = _ratio(eps, rate)
    out["n_closed_book_questions"] = len({ep.question.qid for ep in eps})
    if samples_per_question(eps) > 1:
        out.update(clustered_rates(eps, rates))
    return out


def _rate_mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


#: Metrics printed in the summary table, in order.
HEADLINE = ("accuracy", "answer_rate", "searches_per_episode", "retry_rate", "first_search_gold", "any_search_gold",
            "persistence", "recovery", "wasted_retries", "premature_answer", "unsupported_wrong", "give_up_rate",
            "format_validity", "mean_turns", "query_diversity")
