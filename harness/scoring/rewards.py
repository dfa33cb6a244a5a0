"""ReZero's six rewards as pure functions of an episode, registered by name.

Each reward maps an :class:`~harness.episode.record.Episode` (whose final answer was already judged by
:func:`harness.scoring.judge.judge`, the one scorer shared by evaluation and training) to a float.
:func:`trl_reward` wraps any of them in TRL's reward-function signature. The formulas follow
ReZero's code (menloresearch/DeepSearch, ``rewards.py``), read in its own words; where we differ it
is said below.

=================  =========================================================================
name               formula
=================  =========================================================================
correctness        1 if the episode ended on an answer turn and the judge says correct, else 0
                   (ReZero asks the policy model itself a Yes/No question; our default judge is
                   deterministic, the LLM judge is optional: ``harness run --llm-judge``)
format             mean over assistant turns of "well formed" (``<think>`` first, exactly one
                   closed action, no self-written ``<information>``), times 1 if the episode
                   ended on an answer else 0.5; 0 for an episode with no turns (ReZero checks
                   the last message only, 1/0; we score every turn so a malformed search turn
                   in the middle costs something)
retry              ReZero's rule: 0 unless the episode ended with an answer; else
                   ``min(0.2 + 0.15 * min(n_searches, 5), 1)`` for ``n_searches >= 1`` (one search
                   0.35, two 0.5, ... five or more 0.95), halved when any assistant turn holds
                   more than one ``<search>``; 0 without searches. ``n_searches`` counts search
                   turns (the environment runs one search per turn); ReZero counts tags
em_chunk           1 if the gold passage (the question's last supporting paragraph, which lies
                   inside the gold chunk) appeared verbatim in any ``<information>`` block, else
                   0; a paraphrased result never counts (ReZero matches the whole chunk text)
search_strategy    ReZero's rule: 0.2 if some turn thinks and searches; + 0.2 per search turn
                   that follows results and whose ``<think>`` analyses them (uses one of: based,
                   according, from, result(s), found, show(s), provided, information), at most
                   0.4; + 0.4 if the final answer turn's ``<think>`` analyses the results and the
                   episode searched at least once (ReZero gives this 0.4 without a search too;
                   we do not, since "analysis" of no results is no search strategy)
search_diversity   0 without searches, 0.2 for one; otherwise, clipped to [0, 1]:
                   ``min(0.4, 0.2 * unique queries) + 0.4 * (1 - mean pairwise similarity)
                   - 0.1 * near-duplicate pairs (similarity in [0.8, 1)) - 0.2 * exact
                   duplicates``, similarity = ``difflib.SequenceMatcher`` ratio of normalised
                   queries (ReZero also rewards search operators such as ``site:``; our BM25 and
                   dense retrievers have none, so that term is left out)
=================  =========================================================================

>>> sorted(REWARDS)
['correctness', 'em_chunk', 'format', 'retry', 'search_diversity', 'search_strategy']
"""

from __future__ import annotations

import difflib
import itertools
import logging
import re
from typing import Callable

from harness.core.config import RewardWeights
from harness.episode.record import Episode

log = logging.getLogger(__name__)
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
    if ep.answer is None or ep.n_searches == 0:
        return 0.0
    r = min(1.0, RETRY_BASE + RETRY_PER_SEARCH * min(ep.n_searches, RETRY_MAX_SEARCHES))
    if any(t.action.n_search > 1 for t in ep.turns):
        r *= 0.5
    return round(r, 3)


@register("em_chunk")
def em_chunk(ep: Episode) -> float:
    return 1.0 if ep.gold_seen else 0.0


_ANALYSIS = frozenset("based according from result results found show shows provided information".split())


def _analyses(turn_text: str) -> bool:
    return bool(_words(" ".join(_THINK.findall(turn_text))) & _ANALYSIS)


@register("search_strategy")
def search_strategy(ep: Episode) -> float:
    score = 0.2 if any(t.action.kind == "search" and t.action.has_think for t in ep.turns) else 0.0
    analysed, after_results = 0, False
    for t in ep.turns:
        if after_results and t.action.kind == "search" and _analyses(t.text):
            analysed += 1
        if t.search is not None:
            after_results = True
    score += min(0.4, 0.2 * analysed)
    if ep.answer is not None and ep.n_searches and _analyses(ep.turns[-1].text):
        score += 0.4
    return round(score, 3)


def query_similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two queries after case and whitespace folding.

    >>> query_similarity("Oxygen  tank", "oxygen tank")
    1.0
    """
    return difflib.SequenceMatcher(None, _norm(a), _norm(b)).ratio()


def _norm(q: str) -> str:
    return " ".join(q.lower().split())


@register("search_diversity")
def search_diversity(ep: Episode) -> float:
    qs = ep.queries
    if not qs:
        return 0.0
    if len(qs) == 1:
        return 0.2
    sims = [query_similarity(a, b) for a, b in itertools.combinations(qs, 2)]
    score = min(0.4, 0.2 * len({_norm(q) for q in qs})) + 0.4 * (1.0 - sum(sims) / len(sims))
    score -= 0.1 * sum(0.8 <= x < 1.0 for x in sims) + 0.2 * sum(x == 1.0 for x in sims)
    return round(min(1.0, max(0.0, score)), 3)


def score_episode(ep: Episode, weights: RewardWeights | None = None) -> dict[str, float | None]:
    """Every reward, plus ``total`` (the weighted sum used by GRPO) when weights are given.

    A reward that raises is recorded as ``None`` under its name (metrics count it in
    ``n_reward_errors`` and leave it out of means) and its error is added to ``ep.error``; it is
    never silently scored 0. ``total`` is then ``None`` too when that reward has a nonzero weight.
    """
    out: dict[str, float | None] = {}
    errors = []
    for name, fn in REWARDS.items():
        try:
            out[name] = float(fn(ep))
        except Exception as e:  # recorded, not hidden
            out[name] = None
            errors.append(f"reward {name}: {e!r}")
    if weights is not None:
        w = weights.model_dump()
        broken = [k for k in REWARDS if out[k] is None and w[k] != 0.0]
        out["total"] = None if broken else sum(w[k] * (out[k] or 0.0) for k in REWARDS if w[k] != 0.0)
    if errors:
        ep.error = "; ".join(filter(None, [ep.error, *errors]))
    return out


def trl_reward(name: str) -> Callable[..., list[float]]:
    """A TRL reward function ``f(prompts, completions, **kwargs) -> list[float]`` for reward ``name``.

    The rollout function passes the finished episodes in the ``episode`` column (one per completion).
    """
    fn = REWARDS[name]

    def reward(prompts=None, completions=None, episode=None, **kwargs) -> list[float | None]:
        if episode is None:
            raise ValueError(f"reward {name!r} needs the 'episode' column from the harness rollout function")
        out: list[float | None] = []
        for ep in episode:
            try:
                out.append(float(fn(ep)))
            except Exception as e:  # TRL treats None as "unscorable" (NaN), not as 0
                log.error("reward %s raised on %s: %r", name, ep.question.qid, e)
                out.append(None)
        return out

    reward.__name__ = name
    return reward
