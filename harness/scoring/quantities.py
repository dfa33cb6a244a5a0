"""Quantities in answer text: numbers with units, clock times, months and dotted ids.

The parsing half of the judge (:func:`harness.scoring.judge.number_match` holds the rule that uses
it), also used by the extractive reader (:mod:`harness.policies.reader`) so that its spans parse the
same way: :func:`extract_quantities`, :func:`read_unit` (a unit after a number) and
:func:`repair_ocr_digits` (``l2`` -> ``12``, length-preserving).

It understands units and their spellings, signs, thousands separators, decimals, fractions,
number words, clock times, months and the OCR confusions of the Apollo report. Pure and
stdlib-only; regular expressions are compiled once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache

__all__ = ["NUMBER_WORDS", "UNIT_WORDS", "Quantity", "extract_quantities", "month_words", "quantity_matches",
           "read_unit", "repair_ocr_digits"]

_OCR_RE = re.compile(r"(?<![A-Za-z])(?=[0-9lo.,:/]*[0-9])[0-9lo]+(?:[.,:/][0-9lo]+)*(?![A-Za-z])")
_OCR_TABLE = str.maketrans("lo", "10")
_LATEX_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ"), "\u00b0"),
    (re.compile(r"\\(?:mathrm|mathsf|mathbf|mathit|text|rm)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\^\s*\{?[-\d]+\}?"), ""),
    (re.compile(r"\\pm"), "\u00b1"),
    (re.compile(r"\\[A-Za-z]+|[${}]"), " "),
    (re.compile(r"~"), " "),
)
_DASH_RANGE_RE = re.compile(r"(?<=\d)\s*[\u2013\u2014]\s*(?=\d)")

_CLOCK_RE = re.compile(
    r"(?<![\w:.])(\d{1,3})\s?:\s?(\d{2})(?:\s?:\s?(\d{2})(\.\d+)?)?(?![\d:])"
    r"(?:\s*([ap])\.?\s?m\b\.?)?",
    re.I,
)
_DOTTED_ID_RE = re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\d])")
_MIXED_FRAC_RE = re.compile(r"(?<![\w/.])(\d+)(?:\s*-\s*|\s+)(\d)/(\d{1,2})(?![\w/])")
_FRAC_RE = re.compile(r"(?<![\w/.])(\d)/(\d{1,2})(?![\w/])")
_SIGN = r"(?P<sign>(?:\+/-|\u00b1)\s?|[-+](?=\d)|(?:plus\s+(?:or|and)\s+minus|minus|plus|negative)\s+)?"
_NUM_RE = re.compile(
    r"(?<![\w/])(?<!\d[.,])" + _SIGN
    + r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[ \u00a0]\d{3})+(?![\d.,]\d)|\d+)"
    r"(?P<frac>\.\d+)?(?:\s*(?P<mult>thousand|million|billion)\b)?",
    re.I,
)
_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
          "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUE = {w: i for i, w in enumerate(_SMALL)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_MULT_VALUE = {"hundred": 100.0, "thousand": 1e3, "million": 1e6, "billion": 1e9}
_WORD_NUM_RE = re.compile(
    r"(?<![\w-])(?:(?P<tens>" + "|".join(_TENS) + r")(?:[- ](?P<unit>" + "|".join(_SMALL[1:10]) + r"))?"
    r"|(?P<small>" + "|".join(sorted(_SMALL, key=len, reverse=True)) + r")|(?P<a>a))"
    r"(?:\s+(?P<mult>hundred|thousand|million|billion))?(?P<half>\s+and\s+(?:one|a)[- ]half)?(?![\w-])",
    re.I,
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_RE = re.compile(
    r"(?<![\w])(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])(\.)?(?=(\s*\d)?)",
    re.I,
)
_HEMI_RE = re.compile(r"\s?([NSEW])(?![A-Za-z])")

# (pattern, canonical unit); tried in order, so longer spellings come first.
_UNIT_ALIASES: tuple[tuple[str, str], ...] = (
    (r"ampere[- ]?hours?|amp[- ]?(?:hrs?|hours?)|a-h", "amp_hr"),
    (r"amperes?|amps?", "amp"),
    (r"\u00b0\s*f|deg(?:rees?|\.)?\s+(?:f|fahrenheit)|fahrenheit", "degF"),
    (r"\u00b0\s*c|deg(?:rees?|\.)?\s+(?:c|celsius)|celsius", "degC"),
    (r"\u00b0", "deg"),
    (r"degrees?|deg\.?", "deg"),
    (r"feet|foot|ft\.?", "ft"),
    (r"inch(?:es)?|in\.", "in"),
    (r"nautical\s+miles?|n\.\s?mi\.?|n\.?\s?mi\.?|nmi|miles?|mi\.?", "mi"),
    (r"kilomet(?:er|re)s?|km", "km"),
    (r"centimet(?:er|re)s?|cm", "cm"),
    (r"met(?:er|re)s?", "m"),
    (r"pounds?|lbs?\.?|lbm", "lb"),
    (r"ounces?|oz\.?", "oz"),
    (r"psi[agd]?", "psi"),
    (r"%", "pct"),
    (r"percent|per\s+cent|pct", "pct"),
    (r"seconds?|secs?\.?|s", "s"),
    (r"minutes?|mins?\.?", "min"),
    (r"hours?|hrs?\.?|h", "hr"),
    (r"days?", "day"),
    (r"weeks?", "week"),
    (r"volts?", "volt"),
    (r"watts?", "watt"),
    (r"kilohertz|khz", "khz"),
    (r"hertz|hz", "hz"),
    (r"decibels?|db", "db"),
    (r"g(?:'s)?", "g"),
    (r"mg", "mg"),
    (r"liters?|litres?|l", "l"),
    (r"scc", "scc"),
    (r"ppm", "ppm"),
    (r"cycles?", "cycle"),
    (r"beats?", "beat"),
    (r"'|\u2032", "arcmin"),
)
# word-like spellings must end at a word boundary; symbols (\u00b0, %, ') need not
_UNIT_ATOM_RE = re.compile(
    "|".join(f"({p})" + ("(?![a-z])" if p[-1].isalpha() or p[-1] in ".?)" else "")
             for p, _ in _UNIT_ALIASES),
    re.I,
)
_UNIT_LEAD_RE = re.compile(r"[ \t]?-?[ \t]?")
_UNIT_PER_RE = re.compile(r"\s*(?:/|per\s+)\s*")
_UNIT_WORDS = frozenset(
    "ampere amperes amp amps hour hours hr hrs h degree degrees deg f c fahrenheit feet foot ft inch "
    "inches in nautical mile miles mi n nmi kilometer kilometers km cm meter meters m pound pounds lb "
    "lbs ounce ounces oz psi psia psig percent cent pct second seconds sec secs s minute minutes min "
    "mins day days week weeks volt volts watt watts khz hz db g mg l scc ppm cycle cycles beat beats "
    "per".split()
)
_TIME_SECONDS = {"s": 1.0, "min": 60.0, "hr": 3600.0, "day": 86400.0, "week": 604800.0, "clock": 1.0}
_JOIN_RE = re.compile(r"\s*(?:and\s+)?")


@dataclass(frozen=True)
class Quantity:
    """One number found in a text.

    ``value`` is signed and in ``unit`` (clock times: seconds).  ``step`` is the precision as written
    (``0.01`` for ``415.79``, ``60`` for the clock time ``57:57``).  ``unit`` is a canonical spelling
    (``ft``, ``psi``, ``deg``, ``hr``, ``ft/s``, ...), ``"clock"`` for h:m[:s] times, ``"month"`` for
    month names (value 1-12) or ``"id"`` for dotted identifiers such as section ``14.1.8`` (then
    ``text`` holds it).  ``signed`` marks an explicit sign (``-``, ``+``, ``minus``, ``plus``),
    ``either_sign`` marks ``±``; ``tolerance`` marks the ``20`` in ``1900 ± 20``.
    """

    value: float
    unit: str | None = None
    step: float = 1.0
    signed: bool = False
    either_sign: bool = False
    hemisphere: str | None = None
    tolerance: bool = False
    text: str = ""



def repair_ocr_digits(text: str) -> str:
    """Repair OCR letters inside numbers (``l`` -> ``1``, ``o`` -> ``0``); the length is unchanged.

    >>> repair_ocr_digits("l2 percent at 32:2l:49, 190o psi, loose")
    '12 percent at 32:21:49, 1900 psi, loose'
    """
    return _OCR_RE.sub(lambda m: m.group(0).translate(_OCR_TABLE), text)


def _clean_for_numbers(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-").replace("\u2044", "/")
    for pattern, repl in _LATEX_SUBS:
        text = pattern.sub(repl, text)
    text = _DASH_RANGE_RE.sub(" to ", text)
    return repair_ocr_digits(text)


def read_unit(text: str, pos: int) -> tuple[str | None, int]:
    """The canonical unit written at ``pos`` (after a number) and where it ends; ``(None, pos)`` if none.

    >>> read_unit("87 psia at", 2), read_unit("25 565 ft/sec", 6), read_unit("3 apples", 1)
    (('psi', 7), ('ft/s', 13), (None, 1))
    """
    lead = _UNIT_LEAD_RE.match(text, pos)
    start = lead.end() if lead else pos
    m = _UNIT_ATOM_RE.match(text, start)
    if not m or m.end() == start:
        return None, pos
    unit, end = _UNIT_ALIASES[m.lastindex - 1][1], m.end()
    per = _UNIT_PER_RE.match(text, end)
    if per:
        m2 = _UNIT_ATOM_RE.match(text, per.end())
        if m2 and m2.end() > per.end():
            unit, end = f"{unit}/{_UNIT_ALIASES[m2.lastindex - 1][1]}", m2.end()
    return unit, end


def extract_quantities(text: str | None) -> list[Quantity]:
    """All quantities (numbers with units, clock times, months, dotted ids) in ``text``, in order.

    Adjacent durations merge into seconds (``55 hours 55 minutes`` -> 201300 s, step 60).

    >>> [(q.value, q.unit) for q in extract_quantities("1,200 ft and -3.5\u00b0 at 55:54:53")]
    [(1200.0, 'ft'), (-3.5, 'deg'), (201293.0, 'clock')]
    >>> [(q.value, q.unit) for q in extract_quantities("l2 percent of Nov. 7")]
    [(12.0, 'pct'), (11.0, 'month'), (7.0, None)]
    >>> [(q.value, q.unit, q.step) for q in extract_quantities("Two and one half days; 9 min 57 s")]
    [(2.5, 'day', 0.5), (597.0, 's', 1.0)]
    """
    return list(_extract_cached(text)) if text else []


@lru_cache(maxsize=8192)
def _extract_cached(raw: str) -> tuple[Quantity, ...]:
    text = _clean_for_numbers(raw)
    found: list[tuple[int, int, Quantity]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e, _ in found)

    def add(start: int, end: int, q: Quantity, with_unit: bool = True) -> None:
        unit, stop = q.unit, end
        hemi = _HEMI_RE.match(text, end) if q.unit is None else None
        if with_unit and not hemi:
            unit, stop = read_unit(text, end)
            unit = unit or q.unit
            hemi = _HEMI_RE.match(text, stop)
        if hemi:
            stop = hemi.end()
        found.append((start, stop, replace(q, unit=unit, hemisphere=hemi.group(1) if hemi else None)))

    for m in _CLOCK_RE.finditer(text):
        h, mi, sec, frac, ampm = m.groups()
        hours = int(h) % 12 + (12 if ampm and ampm.lower() == "p" else 0) if ampm else int(h)
        value = hours * 3600 + int(mi) * 60 + (int(sec) if sec else 0) + (float(frac) if frac else 0.0)
        step = 60.0 if sec is None else (10.0 ** -(len(frac) - 1) if frac else 1.0)
        add(m.start(), m.end(), Quantity(round(value, 6), "clock", step), with_unit=False)
    for m in _DOTTED_ID_RE.finditer(text):
        if free(m.start(), m.end()):
            ident = ".".join(str(int(part)) for part in m.group(0).split("."))
            add(m.start(), m.end(), Quantity(0.0, "id", text=ident), with_unit=False)
    for m in _MIXED_FRAC_RE.finditer(text):
        if free(m.start(), m.end()) and int(m.group(3)) != 0:
            add(m.start(), m.end(), Quantity(int(m.group(1)) + int(m.group(2)) / int(m.group(3)), step=0.5))
    for m in _FRAC_RE.finditer(text):
        if free(m.start(), m.end()) and int(m.group(2)) != 0:
            add(m.start(), m.end(), Quantity(int(m.group(1)) / int(m.group(2)), step=0.01))
    for m in _NUM_RE.finditer(text):
        if not free(m.start("int"), m.end()):
            continue
        sign = " ".join((m.group("sign") or "").lower().split())
        digits = re.sub(r"[,\s]", "", m.group("int"))
        frac = m.group("frac") or ""
        value = float(digits + frac) * _MULT_VALUE.get((m.group("mult") or "").lower(), 1.0)
        either = sign in ("\u00b1", "+/-", "plus or minus", "plus and minus")
        value = -value if sign in ("-", "minus", "negative") else value
        # "1900 ± 20": a ± right after another quantity states a tolerance, not a key number
        tolerance = either and bool(found) and m.start() - max(e for _, e, _ in found) <= 2
        step = 10.0 ** -(len(frac) - 1) if frac else 1.0
        signed = bool(sign) and not either
        add(m.start(), m.end(), Quantity(value, None, step, signed, either, tolerance=tolerance))
    for m in _WORD_NUM_RE.finditer(text):
        if not free(m.start(), m.end()):
            continue
        mult = _MULT_VALUE.get((m.group("mult") or "").lower())
        if m.group("a"):
            if mult is None:
                continue
            base = 1.0
        elif m.group("tens"):
            base = _WORD_VALUE[m.group("tens").lower()] + _WORD_VALUE.get((m.group("unit") or "").lower(), 0)
        else:
            base = float(_WORD_VALUE[m.group("small").lower()])
        value = base * (mult or 1.0) + (0.5 if m.group("half") else 0.0)
        add(m.start(), m.end(), Quantity(value, step=0.5 if m.group("half") else 1.0))
    for m in _MONTH_RE.finditer(text):
        word, dot, followed = m.group(1).lower(), m.group(2), m.group(3)
        full = len(word) > 4 or word in ("june", "july")
        if (word == "may" and not followed) or (not full and word != "may" and not (dot or followed)):
            continue
        if free(m.start(), m.end(1)):
            found.append((m.start(), m.end(1), Quantity(float(_MONTHS.index(word[:3]) + 1), "month")))
    found.sort(key=lambda item: item[0])
    return tuple(_merge_durations(text, found))


def _merge_durations(text: str, found: list[tuple[int, int, Quantity]]) -> list[Quantity]:
    """Fold runs such as ``55 hours 55 minutes`` (larger unit first) into one quantity in seconds."""
    out: list[tuple[int, Quantity, float | None]] = []  # (end, quantity, scale of its last part)
    for start, end, q in found:
        scale = _TIME_SECONDS.get(q.unit or "") if q.unit != "clock" else None
        if out and scale and q.value >= 0:
            prev_end, prev, prev_scale = out[-1]
            if prev_scale and prev_scale > scale and prev.value >= 0 \
                    and _JOIN_RE.fullmatch(text, prev_end, start):
                total = prev.value * _TIME_SECONDS[prev.unit or "s"] + q.value * scale
                out[-1] = (end, Quantity(total, "s", q.step * scale), scale)
                continue
        out.append((end, q, scale))
    return [q for _, q, _ in out]



def quantity_matches(gold: Quantity, pred: Quantity) -> bool:
    if (gold.unit in ("month", "id")) or (pred.unit in ("month", "id")):
        return gold.unit == pred.unit and gold.value == pred.value and gold.text == pred.text
    if gold.hemisphere and pred.hemisphere and gold.hemisphere != pred.hemisphere:
        return False
    # a sign stated by the gold binds ("-0.6" is not "0.6"); an unsigned gold states a magnitude
    if gold.signed and not pred.either_sign and (gold.value < 0) != (pred.value < 0):
        return False
    gv, pv, gstep, pstep = abs(gold.value), abs(pred.value), gold.step, pred.step
    clock = gold.unit == "clock" or pred.unit == "clock"
    if gold.unit and pred.unit and gold.unit != pred.unit:
        gs, ps = _TIME_SECONDS.get(gold.unit), _TIME_SECONDS.get(pred.unit)
        if gs is None or ps is None:
            return False
        gv, pv, gstep, pstep = gv * gs, pv * ps, gstep * gs, pstep * ps
    elif clock and not (gold.unit and pred.unit):
        return False  # a bare number is not a clock time
    if abs(gv - pv) <= 1e-9 * max(1.0, gv):
        return True
    if pstep < gstep:  # prediction more precise than the gold: accept the gold's rounding
        if clock:
            return gv <= pv < gv + gstep
        return gstep < 1.0 and abs(pv - gv) <= gstep / 2 + 1e-9
    return False


#: Words that only spell a unit (never content of an answer).
UNIT_WORDS = _UNIT_WORDS
#: Number words and their values (``zero`` .. ``ninety``).
NUMBER_WORDS = _WORD_VALUE


def month_words(text: str) -> set[str]:
    """Month names as written in ``text`` (lower case).

    >>> sorted(month_words("Launched April 11, 1970; splashdown Apr. 17"))
    ['apr', 'april']
    """
    return {m.group(1).lower() for m in _MONTH_RE.finditer(text)}
