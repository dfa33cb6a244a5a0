"""Token usage of a ``harness run`` for its record: what the served backends reported, per policy.

Usage comes from the episodes (each carries the usage of its turns, cached responses included, so a
resumed run still accounts for every episode) and from the LLM judge's replies; ``this_process`` adds
what this process actually sent (requests, cache hits, retries, seconds waited), which a fully cached
re-run shows as zero requests.

>>> from harness.data.loading import Question
>>> from harness.episode.record import Episode
>>> q = Question("q", 0, "?", "a", (), ())
>>> eps = [Episode(q, [], usage={"prompt_tokens": 10, "completion_tokens": 3, "requests": 1, "cached": 0}),
...        Episode(q, [], usage={"prompt_tokens": 12, "completion_tokens": 4, "requests": 1, "cached": 1})]
>>> usage_by_policy({("m", 0.0): {"a": eps[0], "b": eps[1]}}, {})["m"]
{'prompt_tokens': 22, 'completion_tokens': 7, 'requests': 2, 'cached': 1, 'episodes': 2}
"""

from __future__ import annotations

from typing import Any

from harness.episode.record import Episode


def _add(total: dict[str, int], usage: dict[str, Any] | None) -> None:
    for k, v in (usage or {}).items():
        if isinstance(v, (int, float)):
            total[k] = total.get(k, 0) + int(v)


def usage_by_policy(done: dict[tuple[str, float], dict[str, Episode]], stats: dict[str, dict]) -> dict[str, dict]:
    """``{policy: {prompt_tokens, completion_tokens, requests, cached, episodes[, this_process]}}`` for the
    policies whose episodes carry usage, plus ``llm_judge`` when the judge's replies do; ``stats`` holds each
    backend's :class:`~harness.policies.openai_api.RequestStats` of this process, by policy."""
    out: dict[str, dict] = {}
    for (policy, _level), eps in done.items():
        for ep in eps.values():
            if ep.usage:
                total = out.setdefault(policy, {})
                _add(total, ep.usage)
                total["episodes"] = total.get("episodes", 0) + 1
            llm = (ep.judge or {}).get("llm") or {}
            if llm.get("usage"):
                _add(out.setdefault("llm_judge", {}), llm["usage"])
    for name, s in stats.items():
        if s:
            out.setdefault(name, {})["this_process"] = s
    return out
