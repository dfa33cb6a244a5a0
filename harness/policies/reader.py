"""Rule-based extractive reader for scripted reference policies.

``extract_answer(question, passages)`` picks a short span from retrieved passages without a model:

1. :func:`question_type` classifies the question (``number``, ``time``, ``person``, ``location``,
   ``yesno`` or ``other``) from its wh-word and head noun.
2. Passages are split into sentences (initials such as ``John L. Swigert`` do not end one, OCR
   digits such as ``l2`` are repaired); each sentence is scored by the IDF-weighted overlap of its
   lightly stemmed, stopword-free words with the question's, plus a bonus for question bigrams.
3. In the best sentences, candidates of the wanted type are collected (numbers with their units,
   ranges and compound durations, clock times and dates, capitalised name or place spans, document
   references), candidates that only repeat the question are dropped, and each is scored by its
   sentence's score, its distance to the matched question words and how well its unit suits the
   question (``pressure`` -> psi, ``how many hours`` -> hours, ``how many samples`` -> "5 samples").
4. Otherwise ("what caused ...?", "what type of valve ...?") the reader answers with the modifier of
   the asked-for head noun, or with a window of at most ``width`` judged tokens just before or just
   after the sentence's densest run of question words, whichever holds more new words (before, for
   questions whose "what" is the subject).

On the Apollo data (see tests/test_reader.py) the judge accepts 52% of its answers when given the
gold chunk alone (the answer string occurs in that chunk for 92% of questions) and 0.3% when given
a random other chunk.  Deterministic; regular expressions are compiled at import and per-passage
work (sentence split, stemming) is cached, so a call on three ~115-word chunks costs about 0.3 ms.
"""

from __future__ import annotations

import math
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

# the reader shares the judge's normalisation, unit vocabulary and OCR repair so that its spans parse the same way
from harness.scoring.normalize import STOPWORDS, normalize_answer
from harness.scoring.quantities import extract_quantities, read_unit, repair_ocr_digits

__all__ = ["QUESTION_TYPES", "extract_answer", "question_type"]

QUESTION_TYPES: tuple[str, ...] = ("number", "time", "person", "location", "yesno", "other")

#: Words of the Apollo report's questions that never pick out a sentence, beside the English stopwords.
DOMAIN_STOPWORDS = frozenset(
    """mission apollo 13 report text mentioned described shown listed given used type kind name value amount
    total number""".split()
)
_STOPWORDS = STOPWORDS | DOMAIN_STOPWORDS
# head nouns of "what was the <noun>" questions whose answer is a quantity
_MEASURE_NOUNS = (
    "pressure temperature altitude distance velocity speed rate percentage percent duration weight mass "
    "current voltage frequency angle azimuth latitude longitude energy consumption amount number value "
    "magnitude difference increase decrease range deviation bias drift error inertia thrust quantity "
    "capacity level limit count change period interval length height depth size load content"
).split()
# nouns hinting at the unit of the answer
_NOUN_UNITS: dict[str, tuple[str, ...]] = {
    "pressure": ("psi",), "temperature": ("degF", "degC", "deg"), "altitude": ("mi", "ft", "km"),
    "distance": ("mi", "ft", "km", "in", "m"), "velocity": ("ft/s", "km/s"), "speed": ("ft/s", "km/s"),
    "rate": ("psi/hr", "lb/hr", "deg/s", "ft/s", "beat/min"), "percentage": ("pct",), "percent": ("pct",),
    "duration": ("s", "min", "hr", "day"), "weight": ("lb",), "mass": ("lb",), "current": ("amp",),
    "voltage": ("volt",), "frequency": ("khz", "hz", "cycle/min"), "angle": ("deg",), "azimuth": ("deg",),
    "latitude": ("deg",), "longitude": ("deg",), "energy": ("amp_hr",), "propellant": ("lb",),
    "water": ("lb",), "oxygen": ("lb",), "fuel": ("lb",), "velocity change": ("ft/s",),
}
_NOUN_UNIT_RES = tuple((re.compile(r"\b" + noun), units) for noun, units in _NOUN_UNITS.items())
_UNIT_WORD_TO_UNIT = {
    "hours": "hr", "hour": "hr", "minutes": "min", "minute": "min", "seconds": "s", "second": "s",
    "days": "day", "pounds": "lb", "feet": "ft", "miles": "mi", "degrees": "deg", "percent": "pct",
    "amperes": "amp", "volts": "volt", "ampere": "amp_hr",
}
_TIME_UNITS = frozenset({"s", "min", "hr", "day", "clock"})
_HOW_MANY_RE = re.compile(r"how (?:many|much) ([\w-]+)")
_DURATION_Q_RE = re.compile(r"how long|duration|how many (?:hours|minutes|seconds|days)")

_TYPE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("yesno", re.compile(r"^(?:did|does|do|is|was|were|are|can|could|has|have|had|will|would)\b", re.I)),
    ("time", re.compile(r"^(?:when\b|(?:at|by|on|in) what (?:time|date|year|month|day)\b)|"
                        r"\b(?:what time|which time|what date|which date|what year|which year|"
                        r"what month|which month|"
                        r"(?:what|which) (?:was|is|were|are) the (?:[\w-]+ ){0,2}?(?:time|date|year|month)s?"
                        r"(?! (?:period|range|interval))\b)", re.I)),
    ("number", re.compile(r"\b(?:how (?:many|much|long|far|fast|high|large|big|often)|"
                          r"what (?:[\w-]+ )?percent|"
                          r"(?:what|which) (?:was|is|were|are) the (?:[\w-]+ ){0,3}?(?:"
                          + "|".join(_MEASURE_NOUNS) + r")s?\b)", re.I)),
    ("person", re.compile(r"\b(?:who|whom|whose)\b|\bname of the (?:[\w-]+ ){0,2}?(?:pilot|commander|"
                          r"manager|director|astronaut|crewman|person)\b", re.I)),
    ("location", re.compile(r"\b(?:where|what location|which location|what place|"
                            r"(?:what|which) (?:is|was) the location|"
                            r"which station|which site|at which|in which (?:area|region|ocean|city|state))\b",
                            re.I)),
)

_WORD_RE = re.compile(r"[a-z0-9]+(?:[.:][0-9]+)*")
_TOKEN_RE = re.compile(r"\S+")
# split after . ! ? ; unless the period closes an initial ("John L. Swigert") or an abbreviation
_SENT_SPLIT_RE = re.compile(
    r"(?<![ .(\n][A-Za-z]\.)(?<!Fig\.)(?<!No\.)(?<!Nos\.)(?<!Jr\.)(?<!Sr\.)(?<!Dr\.)(?<!Mr\.)(?<!St\.)"
    r"(?<!vs\.)(?<!approx\.)(?<=[.!?;])\s+(?=[A-Z0-9\"(])|\n+|\s{3,}")
_CLOCK_RE = re.compile(r"(?<![\w:.])\d{1,3}\s?:\s?\d{2}(?:\s?:\s?\d{2}(?:\.\d+)?)?(?![\d:])"
                       r"(?:\s*[ap]\.m\.)?", re.I)
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_DATE_RE = re.compile(r"\b" + _MONTH + r"\.?\s?\d{1,2}(?:,\s?(?:19|20)\d{2})?(?!\d)|\b" + _MONTH
                      + r"\.?,?\s(?:19|20)\d{2}\b|\b(?:19|20)\d{2}\b")
_WORD_NUMBER = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
                r"fifteen|twenty|thirty|forty|fifty|hundred)")
_NUMBER_RE = re.compile(
    r"(?<![\w/.])(?<![A-Za-z]-)(?:(?:plus (?:and|or) minus|minus|plus)\s|[-+\u2212\u00b1])?"
    r"(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+(?![\d.])|\d+)(?:\.\d+|[- ]\d/\d{1,2}(?!\d))?"
    r"(?![A-Za-z]{2}|[\d-]*[A-Za-z]-)"
    r"|\b" + _WORD_NUMBER + r"(?:\s+and\s+(?:one|a)[- ]half)?\b", re.I)
_RANGE_TAIL_RE = re.compile(r"\s?(?:\s(?:to|or|and)\s|\u00b1|\+/-)\s?")
_DURATION_TAIL_RE = re.compile(r"\s+(?:and\s+)?(?=\d)")
_CAP = r"(?:[A-Z][a-zA-Z]+\.?|[A-Z]\.)"
_NAME_RE = re.compile(
    r"\b[A-Z][a-z]+(?:\s+(?:[A-Z]\.\s?)+|\s+[A-Z][a-z]+\s+)[A-Z][a-zA-Z]+(?:,?\s+(?:Jr|Sr)\.?)?"
    r"|\b(?:[A-Z]\.\s?){1,2}[A-Z][a-z]+\b")
_PLACE_RE = re.compile(
    r"\b" + _CAP + r"(?:[ \-](?:" + _CAP + r"|of|de|[A-Z]-?\d+))*"
    r"(?:,\s(?:[A-Z][a-z]+\.?(?:\s[A-Z][a-z]+\.?)?|[A-Z]\.\s?[A-Z][a-z]+\.))?")
_PREP_PHRASE_RE = re.compile(
    r"\b(?:in|on|at|near|to|into|between|inside|within|from)\s+(?:the\s+|a\s+|an\s+)?[^\s,;.()]+"
    r"(?:\s+(?!and\b|which\b|that\b|where\b|was\b|were\b)[^\s,;.()]+){0,4}", re.I)
_INSTITUTION_WORDS = frozenset(
    "module pilot commander center space system program manager office administration flight mission "
    "apollo lunar command service crew the a an and of national aeronautics table figure section".split()
)
# "what" as the subject: "What caused ...", "What was found ...", "What type of valve will be redesigned?"
_SUBJECT_Q_RE = re.compile(
    r"^(?:what|which)(?: (?:type|kind|sort) of [\w-]+)? (?:(?:was|were|is|are|will be|has been|had been)"
    r"(?: \w+ly)? (?:\w+ed|\w+en|found|made|built|held|kept|left|lost|sent|set|shown|used)\b|"
    r"(?!happened\b)(?:\w+ed|caused|triggered|made|led|took|gave|kept|left)\b)", re.I)
# the window after the question's words wins unless the one before has this many more new words
_AFTER_BIAS = 1
_TYPE_OF_RE = re.compile(r"^(?:what|which) (?:type|kind|sort) of ([\w-]+)", re.I)
_CODE_RE = re.compile(r"[A-Z]{1,4}(?:-?\d+[A-Z]?)?")
_DOC_REF_RE = re.compile(r"\b(?:appendix|section|figure|table|reference|chapter)\s+[A-Z0-9][\w.\-]*",
                         re.I)
_DOC_Q_RE = re.compile(r"\b(?:found|shown|located|discussed|discussion|presented|described|listed)\b", re.I)
_NEGATION_RE = re.compile(r"\b(?:no|not|none|never|neither|nor|without|cannot|n't)\b", re.I)
_EDGE_JUNK_RE = re.compile(r"^[\s,;:.\-)(]+|[\s,;:(\-]+$")


@dataclass(frozen=True)
class _Sentence:
    text: str
    score: float


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
    return word


def _content_stems(text: str) -> list[str]:
    return [_stem(w) for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS]


def question_type(question: str) -> str:
    """Coarse answer type wanted by ``question`` (one of :data:`QUESTION_TYPES`).

    >>> question_type("How many ampere-hours remained in the batteries?")
    'number'
    >>> question_type("At what time was the suit compressor turned off?")
    'time'
    >>> question_type("Who was the Command Module Pilot?")
    'person'
    >>> question_type("Where did the spacecraft land?")
    'location'
    >>> question_type("Did the failure affect the mission?")
    'yesno'
    >>> question_type("What caused the computer restart?")
    'other'
    """
    q = " ".join(question.split())
    for name, pattern in _TYPE_RULES:
        if pattern.search(q):
            return name
    return "other"


@lru_cache(maxsize=4096)
def _prepared(passage: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Sentences of one passage with their content stems (cached: retrieval repeats chunks)."""
    # NFKC, then the judge's length-preserving OCR repair of digits ("l2" -> "12")
    text = repair_ocr_digits(unicodedata.normalize("NFKC", passage))
    sentences = (s.strip() for s in _SENT_SPLIT_RE.split(text) if s and s.strip())
    return tuple((s, tuple(_content_stems(s))) for s in sentences)


def _split_sentences(passages: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    out: list[tuple[str, tuple[str, ...]]] = []
    for passage in passages:
        if isinstance(passage, str) and passage.strip():
            out.extend(_prepared(passage))
    return out


def _rank_sentences(question: str, prepared: list[tuple[str, tuple[str, ...]]]) -> list[_Sentence]:
    q_stems = _content_stems(question)
    q_set = set(q_stems)
    q_bigrams = set(zip(q_stems, q_stems[1:]))
    sentences = [text for text, _ in prepared]
    words_per_sentence = [words for _, words in prepared]
    n = len(sentences)
    df: dict[str, int] = {}
    for words in words_per_sentence:
        for w in set(words) & q_set:
            df[w] = df.get(w, 0) + 1
    idf = {w: math.log(1.0 + (n + 1) / (df.get(w, 0) + 0.5)) for w in q_set}
    ranked: list[_Sentence] = []
    for text, words in zip(sentences, words_per_sentence):
        matched = {w for w in words if w in q_set}
        score = sum(idf[w] for w in matched)
        score += 0.5 * sum(1 for bg in zip(words, words[1:]) if bg in q_bigrams)
        score /= 1.0 + 0.02 * max(0, len(words) - 25)  # mild penalty for run-on table rows
        ranked.append(_Sentence(text, score))
    ranked.sort(key=lambda s: -s.score)  # stable: ties keep passage order
    return ranked


@lru_cache(maxsize=4096)
def _wanted_units(question: str) -> tuple[frozenset[str], bool]:
    """Units that suit the question, and whether it asks for a duration."""
    q = question.lower()
    wanted: set[str] = set()
    for pattern, units in _NOUN_UNIT_RES:
        if pattern.search(q):
            wanted.update(units)
    m = _HOW_MANY_RE.search(q)
    if m and m.group(1) in _UNIT_WORD_TO_UNIT:
        wanted = {_UNIT_WORD_TO_UNIT[m.group(1)]}
    duration = bool(_DURATION_Q_RE.search(q))
    if duration:
        wanted.update(("s", "min", "hr", "day"))
    return frozenset(wanted), duration


def _number_spans(kind: str, text: str, question: str) -> list[tuple[int, int, float]]:
    wanted, duration = _wanted_units(question)
    counted = _counted_noun(question)
    spans: list[tuple[int, int, float]] = []
    covered = bytearray(len(text) + 1)

    def free(a: int, b: int) -> bool:
        return not any(covered[a:b])

    def take(a: int, b: int) -> None:
        covered[a:b] = b"\x01" * (b - a)

    for m in _CLOCK_RE.finditer(text):
        spans.append((m.start(), m.end(), 1.5 if kind == "time" else 0.0))
        take(m.start(), m.end())
    if kind == "time":
        for m in _DATE_RE.finditer(text):
            if free(m.start(), m.end()):
                spans.append((m.start(), m.end(), 1.2 if len(m.group(0)) > 4 else 0.6))
                take(m.start(), m.end())
    for m in _NUMBER_RE.finditer(text):
        if not free(m.start(), m.end()):
            continue
        unit, end = read_unit(text, m.end())
        if unit is None:  # "4 or 5 seconds", "1900 ± 20 psia": the range takes the unit after it
            tail = _RANGE_TAIL_RE.match(text, m.end())
            nxt = _NUMBER_RE.match(text, tail.end()) if tail else None
            if nxt:
                unit, end2 = read_unit(text, nxt.end())
                end = end2 if unit else end
        while unit in _TIME_UNITS:  # "9 minutes 57 seconds"
            tail = _DURATION_TAIL_RE.match(text, end)
            nxt = _NUMBER_RE.match(text, tail.end()) if tail else None
            unit2, end2 = read_unit(text, nxt.end()) if nxt else (None, end)
            if unit2 not in _TIME_UNITS or unit2 == unit:
                break
            unit, end = unit2, end2
        bonus = 0.3 if unit else 0.0
        if unit and wanted and (unit in wanted or unit.split("/")[0] in wanted):
            bonus += 1.5
        elif unit and duration and unit in _TIME_UNITS:
            bonus += 1.0
        elif (wanted or counted) and unit:
            bonus -= 0.5
        if counted and counted.match(text, end):
            bonus += 1.5
        if kind == "time":
            bonus += 0.8 if unit in _TIME_UNITS else -0.8
        spans.append((m.start(), end, bonus))
        take(m.start(), end)
    return spans


@lru_cache(maxsize=4096)
def _counted_noun(question: str) -> re.Pattern[str] | None:
    """Matcher for the noun counted by "how many <noun>" when it is not a unit (``samples``)."""
    m = _HOW_MANY_RE.search(question.lower())
    if not m or m.group(1) in _UNIT_WORD_TO_UNIT or m.group(1) in _STOPWORDS:
        return None
    return re.compile(r"[\s,]+(?:[\w-]+\s+)?" + re.escape(_stem(m.group(1))), re.I)


def _candidates(kind: str, text: str, question: str) -> list[tuple[int, int, float]]:
    """(start, end, bonus) spans of ``text`` that could answer a ``kind`` question."""
    if kind in ("number", "time"):
        return _number_spans(kind, text, question)
    spans: list[tuple[int, int, float]] = []
    pattern = _NAME_RE if kind == "person" else _PLACE_RE
    for m in pattern.finditer(text):
        words = [w.lower().strip(".,") for w in m.group(0).split()]
        if all(w in _INSTITUTION_WORDS or w in _STOPWORDS for w in words):
            continue
        bonus = 1.0 - 0.4 * sum(w in _INSTITUTION_WORDS for w in words)
        if m.start() == 0 and len(words) == 1:
            bonus -= 1.0  # a capitalised first word is usually not a name
        if kind == "location" and (_CODE_RE.fullmatch(m.group(0)) or _DATE_RE.search(m.group(0))):
            bonus -= 1.5  # "BP-15", "TEXAS September": codes and dates are not places
        spans.append((m.start(), m.end(), bonus))
    if kind == "location":
        doc_ref = 1.0 if _DOC_Q_RE.search(question) else -0.5
        spans.extend((m.start(), m.end(), doc_ref) for m in _DOC_REF_RE.finditer(text))
        for m in _PREP_PHRASE_RE.finditer(text):
            spans.append((m.start(), m.end(), 0.2 - (1.0 if any(c.isdigit() for c in m.group(0)) else 0.0)))
    return spans


def _type_of_span(question: str, ranked: list[_Sentence]) -> str:
    """"What type of valve ...?": the modifier in front of the head noun in the best sentence."""
    m = _TYPE_OF_RE.search(question)
    if not m or not ranked or ranked[0].score <= 0:
        return ""
    head = _stem(m.group(1).lower())
    q_stems = set(_content_stems(question))
    for sent in ranked[:2]:
        toks = _TOKEN_RE.findall(sent.text)
        for i, tok in enumerate(toks):
            if i == 0 or _stem(tok.lower().strip(".,;:()")) != head:
                continue
            j = i
            while j > 0 and j > i - 3:
                prev = toks[j - 1].lower().strip(".,;:()")
                if not prev or prev in _STOPWORDS or prev[-1:] in ",;:" or toks[j - 1][-1] in ",;:":
                    break
                j -= 1
            mods = [t for t in toks[j:i] if _stem(t.lower().strip(".,;:()")) not in q_stems]
            if mods and j < i:
                return _EDGE_JUNK_RE.sub("", " ".join(toks[j : i + 1]))
    return ""


def _echoes_question(span: str, question_lower: str, q_stems: set[str], q_values: set[float]) -> bool:
    """The span only repeats the question ("after 40 seconds" -> "plus 40 seconds")."""
    if span.strip().lower() in question_lower:
        return True
    quantities = [q for q in extract_quantities(span) if q.unit != "id"]
    if quantities and all(abs(q.value) in q_values for q in quantities):
        return True
    words = [w for w in _content_stems(span) if not w[0].isdigit()]
    return bool(words) and not quantities and all(w in q_stems for w in words)


def _best_typed(kind: str, question: str, ranked: list[_Sentence], top: int = 3) -> str:
    q_lower = " ".join(question.lower().split())
    q_stems = set(_content_stems(question))
    q_values = {abs(q.value) for q in extract_quantities(question) if q.unit != "id"}
    best, best_score = "", -math.inf
    for rank, sent in enumerate(ranked[:top]):
        if sent.score <= 0 or sent.score < 0.5 * ranked[0].score:
            break
        token_starts = [m.start() for m in _TOKEN_RE.finditer(sent.text)]
        hit_tokens = [bisect_right(token_starts, m.start()) for m in _WORD_RE.finditer(sent.text.lower())
                      if _stem(m.group(0)) in q_stems]
        for start, end, bonus in _candidates(kind, sent.text, question):
            span = _EDGE_JUNK_RE.sub("", sent.text[start:end])
            if not span or _echoes_question(span, q_lower, q_stems, q_values):
                continue
            first, last = bisect_right(token_starts, start), bisect_right(token_starts, end - 1)
            dist = min((max(0, first - h, h - last) for h in hit_tokens), default=10)
            score = sent.score + bonus - 0.15 * min(dist, 20) - 0.3 * rank
            if score > best_score:
                best, best_score = span, score
    return best


def _window(question: str, sent: _Sentence, width: int) -> str:
    """A short window of the sentence next to its densest run of question words.

    The answer of a "what ..." question is usually the phrase just before or just after the words
    it shares with the question; of the two windows the one holding more new content words wins.
    """
    toks = list(_TOKEN_RE.finditer(sent.text))
    q_list = _content_stems(question)
    q_order = {w: i for i, w in reversed(list(enumerate(q_list)))}
    hit, novel, tok_rank, size = [], [], [], []
    for t in toks:
        stems = _content_stems(t.group(0))
        n_q = sum(s in q_order for s in stems)
        hit.append(bool(stems) and n_q == len(stems))
        novel.append(len(stems) - n_q)
        tok_rank.append(min((q_order.get(w, 99) for w in stems), default=99))
        size.append(_judged_len(t.group(0)))
    if sum(size) <= width or not any(hit):
        return _fit(sent.text, toks, size, 0, len(toks), width, from_left=True)
    # runs of question words (hits separated by at most one non-hit content token); the best run
    # has the most hits, plus one for holding the question's earliest content word found here
    first_word = min(tok_rank)
    runs: list[tuple[int, int, float]] = []
    run_start, hits, gap, lead = None, 0, 0, False
    for i, h in enumerate(hit + [False, False]):
        if h:
            run_start = i if run_start is None else run_start
            hits, gap = hits + 1, 0
            lead = lead or tok_rank[i] == first_word
            runs.append((run_start, i + 1, hits + (1.0 if lead else 0.0)))
        elif run_start is not None and (i >= len(toks) or novel[i]):
            gap += 1
            if gap > 1:
                run_start, hits, gap, lead = None, 0, 0, False
    c_start, c_end, _ = max(runs, key=lambda r: r[2])
    lo, hi = _extent(size, c_start, width, from_left=False), _extent(size, c_end, width, from_left=True)
    n_before, n_after = sum(novel[lo:c_start]), sum(novel[c_end:hi])
    if n_before == 0 and n_after == 0:
        return _fit(sent.text, toks, size, c_start, len(toks), width, from_left=True)
    if n_before and (_SUBJECT_Q_RE.search(question) and n_before >= 2 or n_before > n_after + _AFTER_BIAS):
        return _fit(sent.text, toks, size, lo, c_start, width, from_left=False)
    return _fit(sent.text, toks, size, c_end, hi, width, from_left=True)


@lru_cache(maxsize=65536)
def _judged_len(token: str) -> int:
    """How many tokens the judge's normaliser makes of one whitespace token."""
    return len(normalize_answer(token).split())


def _extent(size: list[int], anchor: int, width: int, from_left: bool) -> int:
    """Far end of the longest run of tokens starting (or ending) at ``anchor`` within ``width``."""
    total, i = 0, anchor
    if from_left:
        while i < len(size) and total + size[i] <= width:
            total, i = total + size[i], i + 1
    else:
        while i > 0 and total + size[i - 1] <= width:
            total, i = total + size[i - 1], i - 1
    return i


def _fit(text: str, toks: list[re.Match[str]], size: list[int], lo: int, hi: int, width: int,
         from_left: bool) -> str:
    """Text of the longest token run in [lo, hi), anchored at lo (or hi), of <= width judged tokens."""
    if from_left:
        a, b = lo, min(hi, _extent(size, lo, width, from_left=True))
    else:
        a, b = max(lo, _extent(size, hi, width, from_left=False)), hi
    if a >= b:
        return ""
    return _EDGE_JUNK_RE.sub("", text[toks[a].start() : toks[b - 1].end()])


def extract_answer(question: str, passages: list[str], width: int = 10) -> str:
    """Answer ``question`` with a short span (at most ``width`` judged tokens) from ``passages``.

    Returns ``""`` when there are no passages or no sentence shares a content word with the question.

    >>> extract_answer("What was the pressure in the surge tank when it was isolated?",
    ...                ["The surge tank was isolated at a pressure of 858 psia. Nothing else."])
    '858 psia'
    >>> extract_answer("Who was the Command Module Pilot?",
    ...                ["The Command Module Pilot was John L. Swigert, Jr., who replaced Mattingly."])
    'John L. Swigert, Jr.'
    >>> extract_answer("Anything?", [])
    ''
    """
    if not question or not passages:
        return ""
    sentences = _split_sentences(list(passages))
    if not sentences:
        return ""
    ranked = _rank_sentences(question, sentences)
    if ranked[0].score <= 0:
        return ""
    kind = question_type(question)
    if kind == "yesno":
        return "No" if _NEGATION_RE.search(ranked[0].text) else "Yes"
    typed = _best_typed(kind, question, ranked) if kind != "other" else _type_of_span(question, ranked)
    if typed:
        return typed
    return _window(question, ranked[0], width)
