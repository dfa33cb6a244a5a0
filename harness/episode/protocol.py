"""Parse one assistant turn of the tag protocol into an action, never raising, in linear time.

A well-formed turn is ``<think>…</think>`` followed by exactly one of ``<search>query</search>`` or
``<answer>…</answer>``, and nothing after it. Anything else is still parsed: the :class:`Action`
says what was found and lists the problems, so rewards can score it and the episode can end cleanly.

Which action a message with several of them carries depends on the protocol
(``protocol.stop_after_action`` of the task):

``True``   (Search-R1's protocol) generation stops at the first ``</search>`` or ``</answer>``, so
           the first complete action is the turn's action (:func:`truncate_after_action` cuts
           backends that generate past it);
``False``  (ReZero's agent) the whole message is kept; the episode goes on with a search when the
           message holds any complete ``<search>`` block, using its *last* query, and otherwise ends
           (on the first ``<answer>`` block, if any).

Blocks are found the way ``re.finditer(r"<t>(.*?)</t>", text, re.S)`` finds them (an opening tag
pairs with the first closing tag after it), but by pairing the tag positions in one pass:
the lazy regex rescans the rest of the text from every unclosed opening tag, which is quadratic
(5,000 unclosed ``<think>`` took 2.2 s; see docs/benchmarks.md).

>>> a = parse_turn("<think>need the date</think><search>launch date Apollo 13</search>")
>>> a.kind, a.query, a.well_formed
('search', 'launch date Apollo 13', True)
>>> parse_turn("<answer>42").problems
('unclosed <answer>',)
>>> parse_turn("<think>t</think><search>a</search><search>b</search>", stop_after_action=False).query
'b'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple


@dataclass(frozen=True)
class Tags:
    think: str = "think"
    search: str = "search"
    answer: str = "answer"
    information: str = "information"


class Block(NamedTuple):
    """One ``<t>…</t>`` block: its span in the text and the span of its body."""

    start: int
    end: int
    body_start: int
    body_end: int

    def body(self, text: str) -> str:
        return text[self.body_start : self.body_end]


def find_blocks(text: str, opening: re.Pattern, closing: re.Pattern) -> list[Block]:
    """Non-overlapping blocks from an ``opening`` match to the first ``closing`` match after it.

    The same blocks as ``re.finditer(opening + r"[\\s\\S]*?" + closing)``, in time linear in the text:
    both tag patterns are scanned once and their positions paired with two pointers.

    >>> o, c = re.compile("<b>"), re.compile("</b>")
    >>> [b.body("<b>1</b><b><b>2</b><b>") for b in find_blocks("<b>1</b><b><b>2</b><b>", o, c)]
    ['1', '<b>2']
    >>> find_blocks("<b>" * 3, o, c)
    []
    """
    opens = [(m.start(), m.end()) for m in opening.finditer(text)]
    if not opens:
        return []
    closes = [(m.start(), m.end()) for m in closing.finditer(text, opens[0][1])]
    out: list[Block] = []
    i = j = 0
    while i < len(opens):
        o_start, o_end = opens[i]
        while j < len(closes) and closes[j][0] < o_end:
            j += 1
        if j == len(closes):
            break  # no closing tag after this opening tag, hence none after any later one
        c_start, c_end = closes[j]
        out.append(Block(o_start, c_end, o_end, c_start))
        while i < len(opens) and opens[i][0] < c_end:
            i += 1
    return out


@lru_cache(maxsize=64)
def tag_patterns(tag: str, flags: int = 0) -> tuple[re.Pattern, re.Pattern]:
    """Compiled opening and closing patterns of a literal tag name (cached)."""
    t = re.escape(tag)
    return re.compile(f"<{t}>", flags), re.compile(f"</{t}>", flags)


def blocks_of(text: str, tag: str, flags: int = 0) -> list[Block]:
    """Every ``<tag>…</tag>`` block of ``text`` (see :func:`find_blocks`).

    >>> [b.body("<think>a</think>x<think>b</think>") for b in blocks_of("<think>a</think>x<think>b</think>", "think")]
    ['a', 'b']
    """
    return find_blocks(text, *tag_patterns(tag, flags))


@dataclass(frozen=True)
class Action:
    """``kind`` is ``search``, ``answer`` or ``none`` (no usable action)."""

    kind: str
    query: str | None = None
    answer: str | None = None
    has_think: bool = False
    think_first: bool = False
    n_search: int = 0
    n_answer: int = 0
    problems: tuple[str, ...] = ()

    @property
    def well_formed(self) -> bool:
        return not self.problems

    @classmethod
    def from_dict(cls, d: dict) -> "Action":
        return cls(d["kind"], d.get("query"), d.get("answer"), d.get("has_think", False), d.get("think_first", False),
                   d.get("n_search", 0), d.get("n_answer", 0), tuple(d.get("problems", ())))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "query": self.query, "answer": self.answer, "has_think": self.has_think,
                "think_first": self.think_first, "n_search": self.n_search, "n_answer": self.n_answer,
                "problems": list(self.problems)}


def _count(text: str, tag: str) -> int:
    return len(tag_patterns(tag)[0].findall(text))


def parse_turn(text: str, tags: Tags = Tags(), *, stop_after_action: bool = True) -> Action:
    """Parse an assistant message; which action wins depends on the protocol (see the module docstring)."""
    text = text or ""
    problems: list[str] = []
    thinks = blocks_of(text, tags.think)
    searches = blocks_of(text, tags.search)
    answers = blocks_of(text, tags.answer)
    for name, found in (("search", searches), ("answer", answers), ("think", thinks)):
        tag = getattr(tags, name)
        if _count(text, tag) > len(found):
            problems.append(f"unclosed <{tag}>")
    if tag_patterns(tags.information)[0].search(text):
        problems.append(f"model wrote its own <{tags.information}>")
    actions = sorted(searches + answers)
    first = actions[0] if actions else None
    has_think = bool(thinks)
    think_first = bool(thinks) and (first is None or thinks[0].end <= first.start)
    if first is not None and not think_first:
        problems.append(f"no <{tags.think}> before the action")
    if len(searches) > 1:
        problems.append(f"{len(searches)} searches in one turn")
    if searches and answers:
        problems.append("search and answer in one turn")
    if len(answers) > 1:
        problems.append(f"{len(answers)} answers in one turn")
    if actions and text[actions[-1].end :].strip():
        problems.append("text after the action")
    counts = {"has_think": has_think, "think_first": think_first, "n_search": len(searches), "n_answer": len(answers)}
    if stop_after_action:
        chosen = first
    else:  # ReZero's agent: any search goes on (with the last query); otherwise the message ends the episode
        chosen = searches[-1] if searches else (answers[0] if answers else None)
    if chosen is None:
        if not any(p.startswith("unclosed") for p in problems):
            problems.append("no action")
        return Action("none", problems=tuple(problems), **counts)
    body = chosen.body(text).strip()
    if chosen in searches:
        if not body:
            problems.append("empty query")
            return Action("none", problems=tuple(problems), **counts)
        return Action("search", query=body, problems=tuple(problems), **counts)
    if not body:
        problems.append("empty answer")
    return Action("answer", answer=body, problems=tuple(problems), **counts)


def action_stops(tags: Tags = Tags()) -> list[str]:
    """The closing tags at which a backend stops generating under ``stop_after_action: true``.

    >>> action_stops()
    ['</search>', '</answer>']
    """
    return [f"</{tags.search}>", f"</{tags.answer}>"]


def restore_stop(text: str, stops: list[str] | tuple[str, ...] | None = None) -> str:
    """Re-append the closing tag a backend cut off with its stop string (lm-eval strips stop strings).

    ``stops`` are closing tags (``</t>``; default: :func:`action_stops`); the one whose ``<t>`` is
    still open at the end of the text is put back.

    >>> restore_stop("<think>x</think><search>oxygen tank")
    '<think>x</think><search>oxygen tank</search>'
    >>> restore_stop("<think>x</think><answer>42</answer>"), restore_stop("<query>q", ["</query>"])
    ('<think>x</think><answer>42</answer>', '<query>q</query>')
    """
    for stop in action_stops() if stops is None else stops:
        if not (stop.startswith("</") and stop.endswith(">")):
            continue
        opening = "<" + stop[2:]
        if text.rfind(opening) > text.rfind(stop):
            return text + stop
    return text


def truncate_after_action(text: str, tags: Tags = Tags()) -> str:
    """Cut a generation right after its first closing ``</search>`` or ``</answer>`` tag.

    Backends without stop strings generate past the action; the protocol ends a turn there.

    >>> truncate_after_action("<think>x</think><search>q</search> and more")
    '<think>x</think><search>q</search>'
    """
    ends = [i + len(t) for t in action_stops(tags) if (i := text.find(t)) >= 0]
    return text[: min(ends)] if ends else text
