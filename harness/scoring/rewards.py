"""ReZero's six rewards (and one named extension, ``retry_after_miss``) as pure functions of an episode,
in two named semantics, registered by name.

``rezero``  ReZero's own code (``src/rewards.py`` of menloresearch/ReZero, the version the pinned
            data commit ships), rule for rule: every reward reads the conversation
            (``Episode.messages``) with ReZero's tag names and regular expressions, as ReZero's
            reward functions read ``completion["messages"]``.
``strict``  the project's stricter rules: rewards read the environment's parsed turns
            (:class:`~harness.episode.protocol.Action`) and what the environment recorded (searches
            run, gold passage shown).

Each reward maps an :class:`~harness.episode.record.Episode` (whose final answer was already judged
by :func:`harness.scoring.judge.judge`, the one scorer shared by evaluation and training) to a float
in [0, 1]. docs/rewards.md has the table, rule by rule: ReZero's behaviour, ``rezero``,
``strict`` (a test keeps the table and this module in step). Correctness keeps the deterministic
judge under both semantics; ReZero's own correctness asks the policy model itself a Yes/No question
(``harness run --llm-judge MODEL`` records such verdicts beside the judge's).

Adding a reward is one registered function (``@register("name")`` serves both semantics;
``@register("name", "rezero")`` and ``@register("name", "strict")`` register one each) plus its
row in docs/rewards.md. Weights name rewards by their registered name (:func:`check_weights`).

>>> sorted(REWARDS)
['correctness', 'em_chunk', 'format', 'retry', 'retry_after_miss', 'search_diversity', 'search_strategy']
"""

from __future__ import annotations

import difflib
import itertools
import logging
import re
from typing import Callable

from harness.core.config import REWARD_SEMANTICS, RewardWeights, TaskConfig
from harness.core.errors import ConfigError
from harness.episode.protocol import blocks_of, find_blocks
from harness.episode.record import Episode
from harness.scoring.normalize import normalize_query, words

log = logging.getLogger(__name__)
RewardFn = Callable[[Episode], float]
#: name -> {semantics: function}
REWARDS: dict[str, dict[str, RewardFn]] = {}


def register(name: str, semantics: str | None = None) -> Callable[[RewardFn], RewardFn]:
    """Register ``fn`` as reward ``name`` under one semantics, or under all when ``semantics`` is None."""
    sems = REWARD_SEMANTICS if semantics is None else (semantics,)
    if semantics is not None and semantics not in REWARD_SEMANTICS:
        raise ValueError(f"unknown reward semantics {semantics!r}; valid: {', '.join(REWARD_SEMANTICS)}")

    def deco(fn: RewardFn) -> RewardFn:
        for s in sems:
            REWARDS.setdefault(name, {})[s] = fn
        fn.reward_name = name  # type: ignore[attr-defined]
        return fn

    return deco


def reward_fn(name: str, semantics: str = "rezero") -> RewardFn:
    """The function of reward ``name`` under ``semantics``."""
    if semantics not in REWARD_SEMANTICS:
        raise ConfigError(f"unknown reward semantics {semantics!r}; valid: {', '.join(REWARD_SEMANTICS)}")
    if name not in REWARDS:
        raise ConfigError(f"unknown reward {name!r}; valid: {', '.join(REWARDS)}")
    if semantics not in REWARDS[name]:
        raise ConfigError(f"reward {name!r} has no {semantics!r} rule; register one (or one for both semantics)")
    return REWARDS[name][semantics]


def check_weights(weights: RewardWeights, where: str = "reward weights") -> RewardWeights:
    """Refuse weights that name no registered reward (one line naming the valid names).

    >>> check_weights(RewardWeights({"retry": 1.0}))["retry"]
    1.0
    >>> check_weights(RewardWeights({"retri": 1.0}))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    harness.core.errors.ConfigError: reward weights: unknown reward 'retri'; valid: correctness, format,
        retry, retry_after_miss, em_chunk, search_strategy, search_diversity
    """
    unknown = [k for k in weights.names() if k not in REWARDS]
    if unknown:
        raise ConfigError(f"{where}: unknown reward {unknown[0]!r}; valid: {', '.join(REWARDS)}")
    return weights


def check_task_weights(task: TaskConfig) -> None:
    """:func:`check_weights` for a task's default weights and every preset's (a task file is data)."""
    check_weights(task.rewards.weights, f"{task.source or task.name}: rewards.weights")
    for name, preset in task.presets.items():
        check_weights(preset.reward_weights, f"{task.source or task.name}: presets.{name}.reward_weights")


# ============================================================================ helpers
def _content(m: dict) -> str:
    c = m.get("content")
    return c if isinstance(c, str) else ""


def _assistant(ep: Episode) -> list[str]:
    return [_content(m) for m in ep.messages if m.get("role") == "assistant"]


def _has(text: str, tag: str) -> bool:
    """``re.search(r"<tag>[\\s\\S]*?</tag>", text)``, in linear time."""
    return bool(blocks_of(text, tag))


def _judged_correct(ep: Episode) -> bool:
    return bool(ep.judge and ep.judge.get("correct"))


def _gold_passage(ep: Episode) -> str:
    paras = ep.question.supporting_paragraphs
    if not paras or not paras[-1]:
        raise ValueError("chunk_content must be provided: the question has no gold passage")
    return paras[-1]


# ============================================================================ correctness
@register("correctness", "rezero")
def correctness_rezero(ep: Episode) -> float:
    """The judge says correct, the conversation's last message is the assistant's, holds an
    ``<answer>`` block and no ``<search>`` or ``<information>`` block."""
    if not ep.messages:
        return 0.0
    last = ep.messages[-1]
    text = _content(last)
    ok = last.get("role") == "assistant" and _has(text, "answer") and not _has(text, "search") \
        and not _has(text, "information")
    return 1.0 if ok and _judged_correct(ep) else 0.0


@register("correctness", "strict")
def correctness_strict(ep: Episode) -> float:
    """The episode ended on an answer turn and the judge says correct."""
    return 1.0 if ep.correct else 0.0


# ============================================================================ format
_TAG_NAMES = "think|search|answer|information|info"
_MARKDOWN_TAG = re.compile(rf"\*\*</?(?:{_TAG_NAMES})>\*\*|\*</?(?:{_TAG_NAMES})>\*|_</?(?:{_TAG_NAMES})>_")
# ReZero's five information patterns, searched with re.IGNORECASE, match exactly when this one does
_INFO_OPEN, _INFO_CLOSE = re.compile(r"<info\w*>", re.I), re.compile(r"</info\w*>", re.I)


@register("format", "rezero")
def format_rezero(ep: Episode) -> float:
    """ReZero's check of the last assistant message (1 or 0)."""
    msgs = _assistant(ep)
    if not msgs:
        return 0.0
    content = msgs[-1]
    stripped = content.strip()
    ends_properly = stripped.endswith(("</search>", "</answer>"))
    if _MARKDOWN_TAG.search(content) or find_blocks(content, _INFO_OPEN, _INFO_CLOSE):
        return 0.0
    has_think = len(blocks_of(content, "think")) >= 1
    has_answer = len(blocks_of(content, "answer")) == 1
    has_search = len(blocks_of(content, "search")) >= 1
    if has_search and has_answer:
        return 0.0
    if has_answer or has_search:
        last_think = content.rfind("</think>")
        answer_pos = content.find("<answer>") if has_answer else float("inf")
        search_pos = content.find("<search>") if has_search else float("inf")
        if last_think == -1 or last_think > min(answer_pos, search_pos):
            return 0.0
    return 1.0 if has_think and (has_answer or has_search) and ends_properly else 0.0


@register("format", "strict")
def format_strict(ep: Episode) -> float:
    """Mean over assistant turns of "well formed", times 1 if the episode ended on an answer else 0.5."""
    if not ep.turns:
        return 0.0
    valid = sum(t.action.well_formed for t in ep.turns) / len(ep.turns)
    return valid * (1.0 if ep.end_reason == "answer" else 0.5)


# ============================================================================ retry
#: ReZero's retry constants: base, per-search increment, searches counted at most, violation factor.
RETRY_BASE, RETRY_PER_SEARCH, RETRY_MAX_SEARCHES, RETRY_VIOLATION_PENALTY = 0.2, 0.15, 5, 0.5


def _retry_formula(n_searches: int, violation: bool) -> float:
    if n_searches == 0:
        return 0.0
    r = RETRY_BASE
    r += min(n_searches, RETRY_MAX_SEARCHES) * RETRY_PER_SEARCH
    r = min(1.0, r)
    if violation:
        r *= 1 - RETRY_VIOLATION_PENALTY
    return round(r, 3)


@register("retry", "rezero")
def retry_rezero(ep: Episode) -> float:
    """0 unless the last assistant message holds an answer; ``<search>`` tags counted in every assistant message."""
    msgs = _assistant(ep)
    if not msgs or not _has(msgs[-1], "answer"):
        return 0.0
    counts = [len(blocks_of(m, "search")) for m in msgs]
    return _retry_formula(sum(counts), any(c > 1 for c in counts))


@register("retry", "strict")
def retry_strict(ep: Episode) -> float:
    """0 unless the episode ended on an answer turn; searches run counted (one per turn)."""
    if ep.answer is None:
        return 0.0
    return _retry_formula(ep.n_searches, any(t.action.n_search > 1 for t in ep.turns))


# ============================================================================ retry_after_miss (extension)
def retries_after_miss(ep: Episode) -> tuple[int, int]:
    """(warranted, wasted): searches run right after a search that did not / did show the gold passage.

    >>> from harness.episode.record import Episode
    >>> from harness.data.loading import Question
    >>> q = Question("q", 0, "Who?", "Ann", ("Ann did it.",), ("1",))
    >>> def ep(*infos):
    ...     msgs = [{"role": "user", "content": "Who?"}]
    ...     for info in infos:
    ...         msgs += [{"role": "assistant", "content": "<search>who</search>"},
    ...                  {"role": "user", "content": f"<information>{info}</information>"}]
    ...     return Episode.from_messages(msgs + [{"role": "assistant", "content": "<answer>Ann</answer>"}], q)
    >>> retries_after_miss(ep("Bob.", "Ann did it.")), retries_after_miss(ep("Ann did it.", "Bob."))
    ((1, 0), (0, 1))
    """
    seen = [t.gold_seen for t in ep.searches]
    warranted = sum(1 for prev in seen[:-1] if not prev)
    return warranted, (len(seen) - 1 - warranted) if seen else 0


@register("retry_after_miss")
def retry_after_miss(ep: Episode) -> float:
    """1 if the episode ended on an answer after at least one retry that followed a miss (a search whose
    results did not show the gold passage) and no retry after a hit; else 0.

    Not ReZero's rule: an extension that pays for a retry only when one was needed (the environment
    knows whether the gold passage was shown). Default weight 0 in every preset except ``retry_after_miss``.
    """
    _gold_passage(ep)  # no gold passage: every search would look like a miss; an error, recorded, not a 1
    if ep.answer is None:
        return 0.0
    warranted, wasted = retries_after_miss(ep)
    return 1.0 if warranted and not wasted else 0.0


# ============================================================================ em_chunk
@register("em_chunk", "rezero")
def em_chunk_rezero(ep: Episode) -> float:
    """1 if the gold passage appears verbatim in a user/ipython message that starts with ``<information>``."""
    gold = _gold_passage(ep)
    results = (_content(m) for m in ep.messages
               if m.get("role") in ("ipython", "user") and _content(m).strip().startswith("<information>"))
    return 1.0 if any(gold in r for r in results) else 0.0


@register("em_chunk", "strict")
def em_chunk_strict(ep: Episode) -> float:
    """1 if the environment showed the gold passage in a search's results (whitespace-insensitive)."""
    _gold_passage(ep)
    return 1.0 if ep.gold_seen else 0.0


# ============================================================================ search_strategy
_ANALYSIS_WORDS = ("based", "according", "from", "result", "results", "found", "show", "shows", "provided",
                   "information")
_ANALYSIS = frozenset(_ANALYSIS_WORDS)
_R_THINK = re.compile(r"<think>[^<>]+</think>")
_R_SEARCH = re.compile(r"<search>[^<>]+</search>")
_R_ANSWER = re.compile(r"<answer>[^<>]+</answer>")
_R_INFO = re.compile(r"<information>[^<>]+</information>")
_R_THINK_BODY = re.compile(r"<think>([^<>]*)</think>", re.I)
_R_ANALYSIS_WORD = re.compile(r"\b(?:based|according|from|results?|found|shows?|provided|information)\b", re.I)


def _analyses_rezero(content: str) -> bool:
    """ReZero's ``<think>[^<>]*?\\b(?:based|...)\\b[^<>]*?</think>`` (re.I), in linear time."""
    return any(_R_ANALYSIS_WORD.search(m.group(1)) for m in _R_THINK_BODY.finditer(content))


@register("search_strategy", "rezero")
def search_strategy_rezero(ep: Episode) -> float:
    """0.2 initial search + 0.2 x min(searches, analysing thinks) after results (<= 0.4) + 0.4 synthesis."""
    if not ep.messages:
        return 0.0
    initial = synthesis = last_was_info = False
    search_after_info = analysis_after_info = 0
    for m in ep.messages:
        content, role = _content(m), m.get("role")
        if role == "assistant":
            has_think, has_search = bool(_R_THINK.search(content)), bool(_R_SEARCH.search(content))
            has_answer, analysis = bool(_R_ANSWER.search(content)), _analyses_rezero(content)
            if not initial and has_think and has_search:
                initial = True
            if last_was_info and has_think:
                search_after_info += has_search
                analysis_after_info += analysis
            if has_answer and has_think and analysis:
                synthesis = True
        elif role in ("user", "ipython") and _R_INFO.search(content):
            last_was_info = True
        else:
            last_was_info = False
    info_reward = min(0.4, 0.2 * min(search_after_info, analysis_after_info))
    return (0.2 if initial else 0.0) + info_reward + (0.4 if synthesis else 0.0)


def _analyses(turn_text: str) -> bool:
    return bool(words(" ".join(b.body(turn_text) for b in blocks_of(turn_text, "think"))) & _ANALYSIS)


@register("search_strategy", "strict")
def search_strategy_strict(ep: Episode) -> float:
    """0.2 if a turn thinks and searches; + 0.2 per search turn after results whose own think
    analyses them (<= 0.4); + 0.4 if the final answer's think analyses and the episode searched."""
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


# ============================================================================ search_diversity
# ReZero's operator pattern; the lookbehind only skips start positions inside a whitespace run, where
# the original pattern can never start a match, and keeps it linear on long runs of spaces
_R_OPERATORS = re.compile(r'(?:site|filetype):\S+|"[^"]+"|(?:(?<!\s)\s+OR\s+|(?<!\s)\s+AND\s+|-\w+)')
_R_NON_WORD = re.compile(r"[^\w\s]")
_R_QUERY = re.compile(r"<search>([^<>]+)</search>")


def _rezero_query(query: str) -> tuple[str, list[str]]:
    operators = _R_OPERATORS.findall(query)
    base = _R_NON_WORD.sub(" ", _R_OPERATORS.sub("", query.lower()))
    return " ".join(base.split()), operators


def pair_ratios(texts: list[str]) -> Callable[[int, int], float]:
    """``r(i, j) = SequenceMatcher(None, texts[i], texts[j]).ratio()``, each distinct pair of strings
    computed once (a message that repeats one query 300 times costs one comparison).

    >>> r = pair_ratios(["ab", "ab", "ac"])
    >>> r(0, 1), r(0, 2), r(1, 2)
    (1.0, 0.5, 0.5)
    """
    forms = list(dict.fromkeys(texts))
    index = {t: k for k, t in enumerate(forms)}
    ids = [index[t] for t in texts]
    needed: dict[int, set[int]] = {}  # b form -> a forms compared with it (a before b in the list)
    for j in range(len(ids)):
        needed.setdefault(ids[j], set()).update(ids[:j])
    table: dict[tuple[int, int], float] = {}
    sm = difflib.SequenceMatcher(None)
    for j, column in needed.items():
        sm.set_seq2(forms[j])  # the b side carries the matcher's index: set once per column
        for i in column:
            sm.set_seq1(forms[i])
            table[i, j] = sm.ratio()
    return lambda i, j: table[ids[i], ids[j]]


@register("search_diversity", "rezero")
def search_diversity_rezero(ep: Episode) -> float:
    """Every ``<search>`` tag of every assistant message; punctuation stripped; operators rewarded."""
    queries = [q for m in ep.messages if m.get("role") == "assistant" for q in _R_QUERY.findall(_content(m))]
    if not queries:
        return 0.0
    n = len(queries)
    if n == 1:
        return 0.2
    norm = [_rezero_query(q) for q in queries]
    ratios = pair_ratios([base for base, _ in norm])
    similarity_sum, pair_count, similar_pairs, exact_duplicates = 0.0, 0, 0, 0
    all_operators: set[str] = set()
    for _, ops in norm:
        all_operators.update(ops)
    seen: set[str] = set()
    unique = 0
    for i in range(n):
        base_i, ops_i = norm[i]
        if base_i in seen:
            exact_duplicates += 1
        else:
            unique += 1
        seen.add(base_i)
        for j in range(i + 1, n):
            base_j, ops_j = norm[j]
            base_sim = ratios(i, j)
            sim = base_sim
            if ops_i != ops_j:
                sim *= max(0.3, 1.0 - len(set(ops_i) ^ set(ops_j)) * 0.2)
            similarity_sum += sim
            pair_count += 1
            if 0.8 < base_sim < 1.0:
                similar_pairs += 1
    diversity = 1 - (similarity_sum / pair_count if pair_count > 0 else 0)
    operator_bonus = min(0.15, len(all_operators) * 0.05) + 0.05 * (sum(1 for _, ops in norm if ops) / n)
    similarity_penalty = similar_pairs * 0.1
    if len(all_operators) >= 2:
        similarity_penalty *= 0.5
    total = min(0.4, 0.2 * unique) + diversity * 0.4 + operator_bonus - similarity_penalty - exact_duplicates * 0.2
    return max(0.0, min(1.0, total))


def query_similarity(a: str, b: str) -> float:
    """Similarity in [0, 1] of two queries after :func:`~harness.scoring.normalize.normalize_query`.

    >>> query_similarity("Oxygen  tank", "oxygen tank")
    1.0
    """
    return difflib.SequenceMatcher(None, normalize_query(a), normalize_query(b)).ratio()


@register("search_diversity", "strict")
def search_diversity_strict(ep: Episode) -> float:
    """The queries the environment ran (one per turn), case and whitespace folded, no operator term."""
    qs = ep.queries
    if not qs:
        return 0.0
    if len(qs) == 1:
        return 0.2
    ratios = pair_ratios([normalize_query(q) for q in qs])
    sims = [ratios(i, j) for i, j in itertools.combinations(range(len(qs)), 2)]
    score = min(0.4, 0.2 * len({normalize_query(q) for q in qs})) + 0.4 * (1.0 - sum(sims) / len(sims))
    score -= 0.1 * sum(0.8 <= x < 1.0 for x in sims) + 0.2 * sum(x == 1.0 for x in sims)
    return round(min(1.0, max(0.0, score)), 3)


# ============================================================================ scoring
def score_episode(ep: Episode, weights: RewardWeights | None = None,
                  semantics: str = "rezero") -> dict[str, float | None]:
    """Every reward under ``semantics``, plus ``total`` (the weighted sum GRPO uses) when weights are given.

    A reward that raises is recorded as ``None`` under its name (metrics count it in
    ``n_reward_errors`` and leave it out of means) and its error is added to ``ep.error``; it is
    never silently scored 0. ``total`` is then ``None`` too when that reward has a nonzero weight.
    """
    out: dict[str, float | None] = {}
    errors = []
    for name in REWARDS:
        try:
            out[name] = float(reward_fn(name, semantics)(ep))
        except ConfigError:
            raise
        except Exception as e:  # recorded, not hidden
            out[name] = None
            errors.append(f"reward {name}: {e!r}")
    if weights is not None:
        active = check_weights(weights).active()
        broken = [k for k in active if out.get(k) is None]
        out["total"] = None if broken else sum(w * out[k] for k, w in active.items())  # type: ignore[operator]
    if errors:
        ep.error = "; ".join(filter(None, [ep.error, *errors]))
    return out


def trl_reward(name: str, semantics: str = "rezero") -> Callable[..., list[float | None]]:
    """A TRL reward function ``f(prompts, completions, **kwargs) -> list[float]`` for reward ``name``.

    The rollout function passes the finished episodes in the ``episode`` column (one per completion).
    """
    fn = reward_fn(name, semantics)

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
