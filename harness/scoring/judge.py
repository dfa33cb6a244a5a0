"""Deterministic answer judge: evaluation metric and RL correctness reward.

The 318 gold answers of the Apollo 13 data are mostly short spans, not sentences (median 2 words,
84% at most 4 words, 8% of 8+ words, longest 23), number-heavy (58% contain a digit: GET clock
times such as ``55:54:53``, quantities such as ``858 psia`` or ``25 565 ft/sec``, dates such as
``Nov.7, 1963``; a few spell numbers out: ``Three``, ``Two and one half``) and OCR-noisy
(``l2 percent``, ``32:2l:49``, ``190o``, LaTeX such as ``$25^{\\circ}$ F``).  The judge combines

* SQuAD-style exact match and token F1 on :func:`~harness.scoring.normalize.normalize_answer`,
* a guarded containment test (:func:`contains_answer`): the gold is a contiguous token run of a
  prediction that is not much longer than the gold, so listing everything does not pay, and
* a number-aware test (:func:`number_match`) over
  :func:`~harness.scoring.quantities.extract_quantities`, which understands units and their
  spellings, signs, thousands separators, decimals, fractions, number words, clock times, months
  and the OCR confusions above.

This module holds the rules; text normalisation lives in :mod:`harness.scoring.normalize` and
quantity parsing in :mod:`harness.scoring.quantities` (both re-exported here). Everything is pure,
deterministic and stdlib-only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.core.config import JUDGE_RULES
from harness.scoring.normalize import STOPWORDS, answer_tokens, normalize_answer
from harness.scoring.quantities import (
    NUMBER_WORDS,
    UNIT_WORDS,
    Quantity,
    extract_quantities,
    month_words,
    quantity_matches,
)

__all__ = [
    "JUDGE_RULES",
    "JudgeResult",
    "Quantity",
    "contains_answer",
    "exact_match",
    "extract_quantities",
    "judge",
    "normalize_answer",
    "number_match",
    "token_f1",
]

_tokens = answer_tokens


def exact_match(prediction: str | None, gold: str) -> bool:
    """True when both answers normalise to the same non-empty string.

    A gold that normalises to nothing (``"A"``, ``"--"``) is compared case-insensitively as written.

    >>> exact_match("the Indian Ocean.", "Indian Ocean")
    True
    >>> exact_match("", "")
    False
    """
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if not g:
        raw = (gold or "").strip().casefold()
        return bool(raw) and (prediction or "").strip().casefold() == raw
    return p == g


def token_f1(prediction: str | None, gold: str) -> float:
    """Bag-of-tokens F1 between the normalised answers (SQuAD definition).

    >>> token_f1("lunar module power", "Lunar module")
    0.8
    >>> token_f1("", "anything")
    0.0
    """
    p, g = _tokens(prediction), _tokens(gold)
    if not p or not g:
        return float(p == g and bool(g))
    remaining = list(g)
    common = 0
    for tok in p:
        if tok in remaining:
            remaining.remove(tok)
            common += 1
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def _length_limit(n_gold: int, factor: float, slack: int) -> int:
    return max(int(factor * n_gold), n_gold + slack)


def contains_answer(prediction: str | None, gold: str, factor: float = 3.0, slack: int = 10) -> bool:
    """Gold tokens form a contiguous run of the prediction's tokens, and the prediction is short.

    The prediction may have at most ``max(factor * n, n + slack)`` tokens, ``n`` the gold's token
    count, so that dumping a whole passage is not rewarded.

    >>> contains_answer("It landed in the South Pacific near Samoa", "The South Pacific")
    True
    >>> contains_answer("12 percent", "2 percent")
    False
    >>> contains_answer("word " * 30 + "Pacific", "Pacific")
    False
    """
    p, g = _tokens(prediction), _tokens(gold)
    if not p or not g or len(p) > _length_limit(len(g), factor, slack):
        return False
    n = len(g)
    return any(p[i : i + n] == g for i in range(len(p) - n + 1))




# ----------------------------------------------------------------------------- numbers

#: Words that hedge or compare a quantity ("approximately 87 psi"): not content of a numeric answer.
HEDGE_WORDS = frozenset("approximately around less minus nearly per plus roughly several within".split())


def _content_words(gold: str) -> list[str]:
    months = month_words(gold)
    return [t for t in _tokens(gold)
            if not any(c.isdigit() for c in t) and t not in STOPWORDS and t not in HEDGE_WORDS
            and t not in UNIT_WORDS and t not in months and t not in NUMBER_WORDS]


def number_match(prediction: str | None, gold: str, factor: float = 3.0, slack: int = 10,
                 text_recall: float = 0.5) -> bool | None:
    """Number-aware match; ``None`` when the gold states no quantity.

    Every key quantity of the gold (tolerances such as ``± 20`` are not key) must appear in the
    prediction with an equal value, the gold's sign when it states one (an unsigned gold gives a
    magnitude: ``minus 3000 volts/meter`` matches ``3000 volts/meter``) and, when both state one,
    a compatible unit (time units convert: ``2 hours`` equals ``120 minutes`` and ``58:00:00``;
    ``miles`` and ``nautical miles`` are one unit, as in the report).  A prediction more
    precise than the gold matches when it rounds (decimals) or truncates (clock times) to the gold.
    Guards: the prediction may hold at most ``max(factor*k, k+4)`` quantities (``k`` the gold's)
    and ``max(factor*n, n+slack)`` tokens.  Words matter too: when the gold has content words
    besides numbers and units, a prediction needs ``text_recall`` of them unless it is a bare
    number of at most three tokens and the gold has at most two such words (``2`` answers
    ``Fuel cell 2``, but ``two of the service module fans`` does not, and ``Apollo 12`` does not
    answer ``Apollo 12 Trajectory Reconstruction and Analysis``).

    >>> number_match("about 1200 feet", "1,200 ft")
    True
    >>> number_match("3.5 degrees", "\u22123.5\u00b0")
    False
    >>> number_match("The tank reached 87 psia", "about 87 psi")
    True
    >>> number_match("55:54", "55:54:53"), number_match("55:54:53", "55:54")
    (False, True)
    >>> number_match("anything", "Indian Ocean") is None
    True
    """
    gold_q = [q for q in extract_quantities(gold) if not q.tolerance]
    if not gold_q:
        return None
    if not prediction or not prediction.strip():
        return False
    pred_tokens, gold_tokens = _tokens(prediction), _tokens(gold)
    if len(pred_tokens) > _length_limit(max(1, len(gold_tokens)), factor, slack):
        return False
    pred_q = extract_quantities(prediction)
    k = len(gold_q)
    if not pred_q or len(pred_q) > max(int(factor * k), k + 4):
        return False
    if not all(any(quantity_matches(g, p) for p in pred_q) for g in gold_q):
        return False
    content = _content_words(gold)
    if content and (len(content) > 2 or len(pred_tokens) > 3):
        present = set(pred_tokens)
        return sum(t in present for t in content) >= text_recall * len(content)
    return True


# ----------------------------------------------------------------------------- the judge


@dataclass(frozen=True)
class JudgeResult:
    """Verdict and all signals.  ``rule`` names the rule that accepted the answer, or ``"none"``."""

    correct: bool
    rule: str
    em: bool
    f1: float
    contains: bool
    number: bool | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def judge(prediction: str | None, gold: str, rule: str = "default", f1_threshold: float = 0.6,
          contains_factor: float = 3.0, contains_slack: int = 10) -> JudgeResult:
    """Judge ``prediction`` against ``gold``.

    Rules: ``"exact_match"``, ``"f1"`` (``f1 >= f1_threshold``), ``"contains"``
    (:func:`contains_answer`), ``"number"`` (:func:`number_match`; a gold without numbers is never
    matched) and ``"default"``, which decides in this order:

    1. exact match after normalisation -> correct (rule ``exact_match``);
    2. the gold states a quantity -> correct iff :func:`number_match` (rule ``number``); a numeric
       gold is never accepted by containment or F1 when the numbers disagree;
    3. guarded containment -> correct (rule ``contains``);
    4. token F1 >= ``f1_threshold`` -> correct (rule ``f1``);
    5. otherwise incorrect (rule ``none``).

    A ``None``/blank prediction is never correct.  All signals are computed whatever the rule.

    >>> judge("It was 1200 feet", "1,200 ft").rule
    'number'
    >>> judge("1300 feet", "1,200 ft").correct
    False
    >>> judge("the lunar module", "Lunar module").rule
    'exact_match'
    >>> judge(None, "29").to_dict()["correct"]
    False
    """
    if rule not in JUDGE_RULES:
        raise ValueError(f"unknown judge rule {rule!r}; valid rules: {', '.join(JUDGE_RULES)}")
    has_pred = bool(prediction and prediction.strip())
    em = exact_match(prediction, gold) if has_pred else False
    f1 = token_f1(prediction, gold) if has_pred else 0.0
    contains = contains_answer(prediction, gold, contains_factor, contains_slack) if has_pred else False
    number = number_match(prediction if has_pred else None, gold, contains_factor, contains_slack)
    if not has_pred:
        return JudgeResult(False, "none", False, 0.0, False, number)
    checks = {"exact_match": em, "f1": f1 >= f1_threshold, "contains": contains, "number": bool(number)}
    if rule != "default":
        ok = checks[rule]
        return JudgeResult(ok, rule if ok else "none", em, f1, contains, number)
    if em:
        decided = "exact_match"
    elif number is not None:
        decided = "number" if number else "none"
    elif contains:
        decided = "contains"
    elif checks["f1"]:
        decided = "f1"
    else:
        decided = "none"
    return JudgeResult(decided != "none", decided, em, f1, contains, number)
