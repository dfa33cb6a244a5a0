"""Optional LLM judge (the paper graded answers with a Yes/No prompt), through any generation backend.

The deterministic judge stays the one that decides ``correct``; the LLM judge's verdicts and raw
replies are stored beside it in each episode's ``judge["llm"]``, and the run reports how often the
two agree (``judge_agreement``) and the LLM judge's accuracy (``llm_accuracy``). ReZero's own
correctness reward asks the policy model itself such a question (``"yes" in reply.lower()``); here
any model can be the judge (``harness run --llm-judge MODEL``).

>>> parse_verdict("Yes, the answer matches.")
True
>>> parse_verdict("no") , parse_verdict("maybe") is None
(False, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.episode.record import Episode

PROMPT = (
    "You grade answers to questions about the Apollo 13 mission report.\n"
    "Question: {question}\nReference answer: {gold}\nStudent answer: {answer}\n"
    "Does the student answer state the same fact as the reference answer? Reply with Yes or No only."
)
_VERDICT = re.compile(r"\b(yes|no)\b", re.I)


def parse_verdict(reply: str) -> bool | None:
    """First Yes/No word in the reply; ``None`` when there is none (counted as unparsed, not as No)."""
    m = _VERDICT.search(reply or "")
    return None if m is None else m.group(1).lower() == "yes"


@dataclass
class _Prompt:
    """Just enough of an episode for a backend's ``generate``: its messages."""

    messages: list[dict[str, str]]


def llm_judge(policy, episodes: list[Episode], max_new_tokens: int = 8) -> None:
    """Ask ``policy`` to grade every answered episode; store verdict and raw reply in ``ep.judge['llm']``."""
    todo = [ep for ep in episodes if ep.answer is not None]
    prompts = [_Prompt([{"role": "user", "content": PROMPT.format(question=ep.question.question,
                                                                   gold=ep.question.answer, answer=ep.answer)}])
               for ep in todo]
    replies = policy.generate(prompts, max_new_tokens) if prompts else []
    for ep, rep in zip(todo, replies):
        verdict = {"verdict": parse_verdict(rep.text), "raw": rep.text}
        if getattr(rep, "usage", None):  # a served judge reports its token usage
            verdict["usage"] = rep.usage
        ep.judge = {**(ep.judge or {}), "llm": verdict}
    for ep in episodes:
        if ep.answer is None:
            ep.judge = {**(ep.judge or {}), "llm": {"verdict": False, "raw": None}}


def agreement_metrics(episodes: list[Episode]) -> dict[str, float | int | None]:
    """LLM-judge accuracy and its agreement with the deterministic judge.

    ``llm_accuracy`` is over *all* episodes, like ``accuracy``: a reply without Yes/No (unparsed) is
    not a Yes, so it counts as wrong, as in ReZero, whose verifier accepts only replies containing
    "yes"; excluding them would let a judge that rambles look more accurate than one that answers.
    ``judge_agreement`` compares verdicts, so it is over the parsed replies only (an unparsed reply
    agrees or disagrees with nothing). ``llm_unparsed`` counts the unparsed replies; ``None`` rates
    mean no reply parsed at all.

    ``judge_kappa`` is Cohen's kappa over the parsed pairs (agreement beyond what the two judges' base
    rates give by chance; ``None`` when chance agreement is 1, e.g. both judges say "wrong" to every
    answer), and ``judge_confusion_*`` the four cells (rule verdict first, LLM verdict second).

    >>> from harness.episode.record import Episode
    >>> from harness.data.loading import Question
    >>> q = Question("q1", 0, "?", "4", ("p",), ("1",))
    >>> eps = [Episode(q, [], judge={"llm": {"verdict": v}}) for v in (True, None, False, False)]
    >>> m = agreement_metrics(eps)  # no episode answered: the rule judge says wrong to all
    >>> m["llm_accuracy"], m["judge_agreement"], m["llm_unparsed"], abs(round(m["judge_kappa"], 12))
    (0.25, 0.6666666666666666, 1, 0.0)
    >>> m["judge_confusion_rule_no_llm_yes"], m["judge_confusion_rule_no_llm_no"]
    (1, 2)
    """
    pairs = [(ep.correct, ep.judge["llm"]["verdict"]) for ep in episodes
             if ep.judge and "llm" in ep.judge and ep.judge["llm"]["verdict"] is not None]
    n_unparsed = sum(1 for ep in episodes if ep.judge and "llm" in ep.judge and ep.judge["llm"]["verdict"] is None)
    if not pairs:
        return {"llm_accuracy": None, "judge_agreement": None, "llm_unparsed": n_unparsed, "judge_kappa": None}
    cells = {f"judge_confusion_rule_{'yes' if a else 'no'}_llm_{'yes' if b else 'no'}":
             sum(1 for x, y in pairs if bool(x) == a and bool(y) == b) for a in (True, False) for b in (True, False)}
    return {
        "llm_accuracy": sum(v for _, v in pairs) / len(episodes),
        "judge_agreement": sum(a == b for a, b in pairs) / len(pairs),
        "llm_unparsed": n_unparsed,
        "judge_kappa": cohen_kappa(pairs),
        **cells,
    }


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two yes/no raters; ``None`` when chance agreement is 1 (kappa is undefined).

    >>> cohen_kappa([(True, True), (False, False), (True, False), (False, False)])
    0.5
    >>> cohen_kappa([(False, False)] * 3) is None
    True
    """
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    p_a, p_b = sum(bool(a) for a, _ in pairs) / n, sum(bool(b) for _, b in pairs) / n
    chance = p_a * p_b + (1 - p_a) * (1 - p_b)
    return None if chance >= 1 else (observed - chance) / (1 - chance)
