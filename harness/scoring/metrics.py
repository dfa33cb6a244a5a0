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
reward_<name>          mean of each reward (``reward_<name>_std`` its standard deviation)
error_rate             P(episode ended by an error)
judge_error_rate       P(the judge raised: such answers count as wrong, and are counted here)
n_reward_errors        number of (episode, reward) pairs whose reward function raised (left out
                       of that reward's mean, never scored 0)
=====================  ===================================================================
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from harness.episode.record import Episode
from harness.scoring.normalize import normalize_query
from harness.stats.intervals import wilson


def _rate(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def searched_after_gold(ep: Episode) -> bool:
    i = ep.first_gold_search
    return i is not None and ep.n_searches > i + 1


def answered_before_gold(ep: Episode) -> bool:
    return ep.answer is not None and not ep.gold_seen


def compute_metrics(episodes: list[Episode]) -> dict[str, float | int | None | dict]:
    """Every metric of the table above for one set of episodes (one run at one noise level)."""
    n = len(episodes)
    if n == 0:
        return {"n": 0}
    correct = [ep.correct for ep in episodes]
    lo, hi = wilson(sum(correct), n)
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
    m["judge_error_rate"] = float(np.mean([bool(ep.judge) and ep.judge.get("rule") == "error" for ep in episodes]))
    names = sorted({k for ep in episodes for k in ep.rewards})
    m["n_reward_errors"] = sum(v is None for ep in episodes for k, v in ep.rewards.items() if k != "total")
    for name in names:
        vals = np.array([np.nan if ep.rewards.get(name) is None else ep.rewards[name] for ep in episodes], dtype=float)
        ok = vals[~np.isnan(vals)]
        m[f"reward_{name}"] = float(ok.mean()) if ok.size else None
        m[f"reward_{name}_std"] = float(ok.std()) if ok.size else None
    return m


def _rate_mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


#: Metrics printed in the summary table, in order.
HEADLINE = ("accuracy", "answer_rate", "searches_per_episode", "retry_rate", "first_search_gold", "any_search_gold",
            "persistence", "recovery", "wasted_retries", "premature_answer", "unsupported_wrong", "give_up_rate",
            "format_validity", "mean_turns", "query_diversity")
