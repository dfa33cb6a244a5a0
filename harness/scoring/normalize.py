"""Text normalisation shared by the judge, the rewards, the metrics and the reader.

* :func:`normalize_answer` folds an answer for comparison (SQuAD style, numbers kept intact);
* :func:`normalize_query` folds a search query for comparison (case and whitespace), the one
  definition rewards (``search_diversity``) and metrics (``query_diversity``) share;
* :data:`STOPWORDS` is the project's one English stopword list; modules that need more name their
  additions beside it (the judge's hedge words, the reader's Apollo-report words). The
  ``apollo3_micro`` task keeps its own list (``tasks/apollo3_micro/hooks.py``) because the committed
  micro weights were built from the questions it selects.

Pure and stdlib-only.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["STOPWORDS", "answer_tokens", "normalize_answer", "normalize_query", "words"]

#: The project's English stopword list (function words only; no domain words).
STOPWORDS: frozenset[str] = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor
    not now of off on once only or other our out over own same she should so some such than that the
    their them then there these they this those through to too under until up very was we were what
    when where which while who whom whose why will with would you your yours""".split()
)

_ARTICLES_RE = re.compile(r"\b(?:a|an|the)\b")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_APOSTROPHE_RE = re.compile(r"['\u2019`]")
# any non-word character (and "_") except a . : / between two digits and a minus sign before one
_PUNCT_RE = re.compile(r"(?!(?<=\d)[.:/](?=\d)|(?<!\w)-(?=\d))[^\w\s]|_")


def normalize_answer(s: str | None) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD style).

    Unlike SQuAD, separators inside numbers survive (``1.5``, ``55:54:53``) and thousands commas
    vanish (``1,200`` -> ``1200``), so distinct numbers never collapse into the same token; other
    punctuation becomes a space (``S-band`` -> ``s band``) and apostrophes vanish.

    >>> normalize_answer("  The Pacific   Ocean! ")
    'pacific ocean'
    >>> normalize_answer("Approximately 1,200 ft at 55:54:53.")
    'approximately 1200 ft at 55:54:53'
    >>> normalize_answer(None)
    ''
    """
    if not s:
        return ""
    s = unicodedata.normalize("NFKC", s).lower().replace("\u2212", "-")
    s = _APOSTROPHE_RE.sub("", _THOUSANDS_RE.sub("", s))
    s = _PUNCT_RE.sub(" ", s)
    return " ".join(_ARTICLES_RE.sub(" ", s).split())



def answer_tokens(s: str | None) -> list[str]:
    """Tokens of the normalised answer.

    >>> answer_tokens("The S-band antenna")
    ['s', 'band', 'antenna']
    """
    return normalize_answer(s).split()


def normalize_query(q: str) -> str:
    """A search query folded for comparison: lower case, whitespace collapsed.

    >>> normalize_query("  Oxygen   TANK ")
    'oxygen tank'
    """
    return " ".join(q.lower().split())


_WORD_RE = re.compile(r"[a-z0-9]+")


def words(s: str) -> set[str]:
    """Lower-cased alphanumeric words of ``s``.

    >>> sorted(words("Based on the results, tank-2"))
    ['2', 'based', 'on', 'results', 'tank', 'the']
    """
    return set(_WORD_RE.findall(s.lower()))
