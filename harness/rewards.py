"""ReZero's six rewards as pure functions of an episode, registered by name.

Each reward maps an :class:`~harness.episode.Episode` (whose final answer was already judged by
:func:`harness.judge.judge`, the one scorer shared by evaluation and training) to a float.
:func:`trl_reward` wraps any of them in TRL's reward-function signature.

=================  =========================================================================
name               formula
=================  =========================================================================
correctness        1 if the episode ended on an answer turn and the judge says correct, else 0
format             mean over assistant turns of "well formed" (``<think>`` first, exactly one
                   closed action, no self-written ``<information>``), times 1 if the episode
                   ended on an answer else 0.5; 0 for an episode with no turns
retry              0 unless the episode ended with an answer and searched at least twice; then
                   ``min(0.2 + 0.15 * n_searches, 0.2 + 0.15 * 5)`` (ReZero's rule: 0.2 base plus
                   0.15 per search, capped at 5 searches), halved when any assistant turn holds
                   more than one ``<search>``
em_chunk           1 if the gold passage (the question's last supporting paragraph) appeared in
                   any ``<information>`` block, else 0
search_strategy    0 without searches; else 0.2 for searching before answering + 0.2 if some
                   ``<think>`` after a search refers back to the results (a query word or a
                   result word reused) + 0.2 for refining (a later query differs from the first)
                   + 0.4 for ending on an answer after at least one search
search_diversity   0 without searches; 1 for a single search; otherwise the mean over query pairs
                   of ``1 - jaccard(words)``, so repeated queries pull it towards 0
=================  =========================================================================

>>> sorted(REWARDS)
['correctness', 'em_chunk', 'format', 'retry', 'search_diversity', 'search_strategy']
"""

from __future__ import annotations

import itertools
import re
from typing import Callable

from harness.config import RewardWeights
from harness.episode import Episode

RewardFn = Callable[[Episode], float]
REWARDS: dict[str, RewardFn] = {}


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    def deco(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        fn.reward_name = name  # type: ignore[attr-defined]
        return fn

    return deco


_WORDS = re.compile(r"[a-z0-9]+")
_THINK = re.compile(r"<think>(.*?)</think>", re.S)


def _words(s: str) -> set[str]:
    return set(_WORDS.findall(s.lower()))


@register("correctness")
def correctness(ep: Episode) -> float:
    return 1.0 if ep.correct else 0.0


@register("format")
def format_reward(ep: Episode) -> float:
    if not ep.turns:
        return 0.0
    valid = sum(t.action.well_formed for t in ep.turns) / len(ep.turns)
    return valid * (1.0 if ep.end_reason == "answer" else 0.5)


#: ReZero's retry constants: base, per-search increment, searches counted at most.
RETRY_BASE, RETRY_PER_SEARCH, RETRY_MAX_SEARCHES = 0.2, 0.15, 5


@register("retry")
def retry(ep: Episode) -> float:
    if ep.answer is None or ep.n_searches < 2:
        return 0.0
    r = RETRY_BASE + RETRY_PER_SEARCH * min(ep.n_searches, RETRY_MAX_SEARCHES)
    if any(t.action.n_search > 1 for t in ep.turns):
        r *= 0.5
    return r


@register("em_chunk")
def em_chunk(ep: Episode) -> float:
    return 1.0 if ep.gold_seen else 0.0


@register("search_strategy")
def search_strategy(ep: Episode) -> float:
    if ep.n_searches == 0:
        return 0.0
    score = 0.2
    seen_words: set[str] = set()
    analysed = False
    after_search = False
    for t in ep.turns:
        if after_search and not analysed:
            thinks = " ".join(_THINK.findall(t.text))
            if _words(thinks) & seen_words:
                analysed = True
        if t.search is not None:
            after_search = True
            seen_words |= _words(t.action.query or "")
    score += 0.2 if analysed else 0.0
    qs = [" ".join(sorted(_words(q))) for q in ep.queries]
    score += 0.2 if any(q != qs[0] for q in qs[1:]) else 0.0
    score += 0.4 if ep.answer is not None else 0.0
    return score


def jaccard(a: set[str], b: set[str]) -> float:
    """>>> jaccard({'a', 'b'}, {'b', 'c'})
    0.3333333333333333
    """
    return len(a & b) / len(a | b) if a | b else 1.0


@register("search_diversity")
def search_diversity(ep: Episode) -> float:
    qs = [_words(q) for q in ep.queries]
    if not qs:
        return 0.0
    if len(qs) == 1:
        return 1.0
    pairs = list(itertools.combinations(qs, 2))
    return sum(1.0 - jaccard(a, b) for a, b in pairs) / len(pairs)


def score_episode(ep: Episode, weights: RewardWeights | None = None) -> dict[str, float]:
    """Every reward, plus ``total`` (the weighted sum used by GRPO) when weights are given.

    A reward that raises is recorded as ``None`` under its name and counted in ``reward_errors``,
    never silently scored 0.
    """
    out: dict[str, float] = {}
    errors = []
    for name, fn in REWARDS.items():
        try:
            out[name] = float(fn(ep))
        except Exception as e:  # recorded, not hidden
            errors.append(f"{name}: {e!r}")
    if weights is not None:
        w = weights.model_dump()
        out["total"] = sum(w[k] * out.get(k, 0.0) for k in REWARDS)
    if errors:
        ep.error = "; ".join(filter(None, [ep.error, *errors]))
    return out


def trl_reward(name: str) -> Callable[..., list[float]]:
    """A TRL reward function ``f(prompts, completions, **kwargs) -> list[float]`` for reward ``name``.

    The rollout function passes the finished episodes in the ``episode`` column (one per completion).
    """
    fn = REWARDS[name]

    def reward(prompts=None, completions=None, episode=None, **kwargs) -> list[float]:
        if episode is None:
            raise ValueError(f"reward {name!r} needs the 'episode' column from the harness rollout function")
        return [float(fn(ep)) for ep in episode]

    reward.__name__ = name
    return reward
