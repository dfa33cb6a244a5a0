"""The episode browser: every policy and noise level, filters a researcher asks for, fair sampling.

Episodes are indexed over whole files (each line parsed once, only its byte offset and its facts
kept), sampled fairly (the same quota for every policy x noise level or eval step; within a quota,
first one example of each kind below in turn, then the same questions across cells), and only the
chosen lines are read again to be drawn. Filters work without script: radio buttons and CSS
sibling selectors; a CSS counter says how many episodes match.

Kinds of episode (the definitions of :mod:`harness.scoring.metrics`):

======================  ===========================================================
recovered               the first search missed the gold passage, it searched again, and the answer is
                        right (an answer right without a retry is not a recovery, though the recovery
                        metric, P(correct | first search missed gold), counts it)
wasted retry            searched again after the gold passage was already shown
premature answer        answered before the gold passage was shown
unsupported wrong       wrong, and the gold passage was never shown
gave up                 ended without an answer (no action, max turns, token budget)
format invalid          at least one assistant turn broke the tag protocol
======================  ===========================================================
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.data.loading import Question
from harness.episode.record import Episode
from harness.report.page import bounded, cap, esc, fmt
from harness.scoring.metrics import answered_before_gold, searched_after_gold

#: Episodes drawn in one report (all runs together), and caps on what one episode may add.
MAX_EPISODES = 200
MESSAGE_CHARS = 3_000
EPISODE_CHARS = 12_000
FIELD_CHARS = 500
PROTOCOL_TAGS = ("think", "search", "information", "answer")
GAVE_UP = ("no_action", "max_turns", "token_budget")

#: (key, label, predicate on an Episode) for each filter.
KINDS: tuple[tuple[str, str, Callable[[Episode], bool]], ...] = (
    ("recovered", "recovered after a failed first search",
     lambda ep: ep.n_searches >= 2 and ep.first_gold_search != 0 and ep.correct),
    ("wasted", "wasted retry", searched_after_gold),
    ("premature", "premature answer", answered_before_gold),
    ("unsupported", "unsupported wrong answer", lambda ep: not ep.correct and not ep.gold_seen),
    ("gaveup", "gave up", lambda ep: ep.end_reason in GAVE_UP),
    ("format", "format invalid", lambda ep: any(not t.action.well_formed for t in ep.turns)),
)
OUTCOMES = (("correct", "correct"), ("wrong", "wrong"))

_TAG_RE = re.compile(r"&lt;(/?)({t})&gt;".format(t="|".join(PROTOCOL_TAGS)))


def highlight_protocol(text: str) -> str:
    """Escape ``text`` (invisible characters made visible), then wrap protocol tags in spans: a tag pair
    (an opening tag and the first closing tag of its name after it) around its body, any other tag
    on its own. Linear in the text, whatever tags a model writes.

    >>> highlight_protocol("<b>x</b><answer>")
    '&lt;b&gt;x&lt;/b&gt;<span class="tag tag-answer">&lt;answer&gt;</span>'
    >>> highlight_protocol("<think>a<search>q</search></think>")  # doctest: +NORMALIZE_WHITESPACE
    '<span class="tag-think"><span class="tag">&lt;think&gt;</span>a<span class="tag-search"><span
    class="tag">&lt;search&gt;</span>q<span class="tag">&lt;/search&gt;</span></span><span
    class="tag">&lt;/think&gt;</span></span>'
    """
    escaped = esc(text)
    tokens = list(_TAG_RE.finditer(escaped))
    if not tokens:
        return escaped
    closer: list[int | None] = [None] * len(tokens)
    following: dict[str, int] = {}
    for j in range(len(tokens) - 1, -1, -1):
        slash, name = tokens[j].groups()
        if slash:
            following[name] = j
        else:
            closer[j] = following.get(name)
    out: list[str] = []

    def emit(a: int, b: int, pos: int, end: int) -> None:
        j = a
        while j < b:
            tok = tokens[j]
            out.append(escaped[pos:tok.start()])
            name, close = tok.group(2), closer[j]
            if not tok.group(1) and close is not None and close < b:
                out.append(f'<span class="tag-{name}"><span class="tag">{tok.group(0)}</span>')
                emit(j + 1, close, tok.end(), tokens[close].start())
                out.append(f'<span class="tag">{tokens[close].group(0)}</span></span>')
                pos, j = tokens[close].end(), close + 1
            else:
                out.append(f'<span class="tag tag-{name}">{tok.group(0)}</span>')
                pos, j = tok.end(), j + 1
        out.append(escaped[pos:end])

    emit(0, len(tokens), 0, len(escaped))
    return "".join(out)


# ---------------------------------------------------------------- index


@dataclass
class Ref:
    """Where one episode is (file, byte offset, line number) and what it is (cell, question, kinds)."""

    path: Path
    offset: int
    line: int
    dims: dict[str, str]
    qid: str
    kinds: frozenset[str] = field(default_factory=frozenset)
    #: What the episode's file is to its run: ``peak`` and/or ``last`` for a training run's eval steps.
    roles: tuple[str, ...] = ()

    @property
    def cell(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.dims.items()))


def kinds_of(row: dict[str, Any]) -> frozenset[str]:
    """The filter keys an episode row belongs to (plus ``correct`` or ``wrong``); computed on the
    Episode the row describes, so they agree with the metrics; a row that is not a full episode
    falls back to its own summary fields."""
    try:
        q = Question(str(row["qid"]), int(row.get("line") or 0), str(row.get("question", "")),
                     str(row.get("gold_answer", "")), (), tuple(row.get("gold_chunk_ids") or ()))
        ep = Episode.from_dict(row, q)
        out = {key for key, _, pred in KINDS if pred(ep)}
        out.add("correct" if ep.correct else "wrong")
        return frozenset(out)
    except Exception:  # a partial or hostile row: use what it says about itself
        correct = row.get("correct") is True
        out = {"correct" if correct else "wrong"}
        if row.get("end_reason") in GAVE_UP:
            out.add("gaveup")
        return frozenset(out)


def index_file(path: Path, dims: Callable[[dict[str, Any]], dict[str, str]], roles: tuple[str, ...] = ()
               ) -> tuple[list[Ref], int]:
    """One :class:`Ref` per readable episode line of ``path``, and the number of bad lines."""
    refs, bad = [], 0
    with path.open("rb") as handle:
        offset = 0
        for lineno, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8", errors="replace"))
            except ValueError:
                bad += 1
                continue
            if not isinstance(row, dict):
                bad += 1
                continue
            refs.append(Ref(path, start, lineno, dims(row), str(row.get("qid", f"line {lineno}")), kinds_of(row),
                            roles))
    return refs, bad


def read_row(ref: Ref) -> dict[str, Any]:
    """The episode row ``ref`` points at."""
    with ref.path.open("rb") as handle:
        handle.seek(ref.offset)
        return json.loads(handle.readline().decode("utf-8", errors="replace"))


# ---------------------------------------------------------------- sampling


def _rank(qid: str) -> str:
    """A stable pseudo-random order of questions (the same in every cell and every report)."""
    return hashlib.sha1(qid.encode("utf-8", errors="replace")).hexdigest()


def select(refs: Sequence[Ref], budget: int = MAX_EPISODES) -> list[Ref]:
    """A fair sample of at most about ``budget`` episodes: every cell gets the same quota; a quota is
    filled first with one example of each kind in turn (up to half of it), then with the same
    questions in every cell; the result is ordered by question, then cell.

    >>> refs = [Ref(Path("x"), i, i, {"policy": p}, f"q{i % 5}", frozenset({"wrong"} if i % 2 else {"correct"}))
    ...         for i, p in enumerate(["a"] * 5 + ["b"] * 5)]
    >>> [(r.dims["policy"], r.qid) for r in select(refs, budget=4)]  # two per policy, the same questions
    [('a', 'q0'), ('b', 'q0'), ('a', 'q3'), ('b', 'q3')]
    """
    cells: dict[tuple, list[Ref]] = {}
    for ref in refs:
        cells.setdefault(ref.cell, []).append(ref)
    if not cells:
        return []
    quota = max(1, budget // len(cells))
    chosen: list[Ref] = []
    for members in cells.values():
        members = sorted(members, key=lambda r: (_rank(r.qid), r.line))
        picked: list[Ref] = []
        taken: set[int] = set()
        keys = [k for k, _, _ in KINDS]
        while len(picked) < quota // 2 and keys:
            for key in list(keys):
                hit = next((i for i, r in enumerate(members) if i not in taken and key in r.kinds), None)
                if hit is None:
                    keys.remove(key)
                    continue
                taken.add(hit)
                picked.append(members[hit])
                if len(picked) >= quota // 2:
                    break
        for i, r in enumerate(members):
            if len(picked) >= quota:
                break
            if i not in taken:
                taken.add(i)
                picked.append(r)
        chosen += picked
    order = {cell: i for i, cell in enumerate(cells)}
    return sorted(chosen, key=lambda r: (_rank(r.qid), order[r.cell]))


# ---------------------------------------------------------------- drawing


_MARKS = {True: '<span class="ok">✓</span>', False: '<span class="bad">✗</span>'}


def episode_html(episode: dict[str, Any], classes: str = "", chips: Sequence[str] = (), system: str | None = None,
                 where: str = "", open_: bool = False, kinds: Sequence[str] = ()) -> str:
    """One collapsible episode: a header line, then question, gold answer, answer, rewards, judge and
    the messages. Every field is bounded (:func:`harness.report.page.bounded`) and the messages share
    one budget, so an episode adds at most about 20k characters to the page whatever it holds; a system
    prompt equal to ``system`` is not repeated."""
    correct = episode.get("correct")
    mark = _MARKS[correct] if isinstance(correct, bool) else "?"
    qid, end, searches = (bounded("—" if episode.get(k) is None else episode.get(k), 80)
                          for k in ("qid", "end_reason", "n_searches"))
    answer = episode.get("answer")
    head = (f"{mark} <b>{qid}</b> · ended: {end} · searches {searches} · answer: "
            + (f"<code>{bounded(answer, 120)}</code>" if answer is not None else "<i>none</i>")
            + "".join(f'<span class="chip">{bounded(c, 60)}</span>' for c in chips)
            + "".join(f'<span class="chip kind">{esc(k)}</span>' for k in kinds))
    meta = [f"<b>{k.replace('_', ' ')}</b>: {bounded(episode[k], FIELD_CHARS, highlight_protocol)}"
            for k in ("question", "gold_answer", "answer") if episode.get(k) is not None]
    if isinstance(episode.get("rewards"), dict):
        text = " · ".join(f"{k} {fmt(v)}" for k, v in episode["rewards"].items())
        meta.append(f"<b>rewards</b>: {bounded(text, FIELD_CHARS)}")
    for key in ("judge", "error", "noise"):
        value = episode.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            meta.append(f"<b>{key}</b>: {bounded(text, FIELD_CHARS)}")
    body = _messages_html(episode.get("messages"), system, where)
    return (f'<details class="ep {classes}"{" open" if open_ else ""}><summary>{head}</summary>'
            f"<div>{'<br>'.join(meta)}</div>{body}</details>")


def _messages_html(raw: Any, system: str | None, where: str) -> str:
    messages = raw if isinstance(raw, list) else [] if raw is None else [raw]
    out, used = [], 0
    for i, msg in enumerate(messages):
        msg = msg if isinstance(msg, dict) else {"content": msg}
        role = str(msg.get("role", "?"))
        text = "" if msg.get("content") is None else str(msg.get("content"))
        if role == "system" and system is not None and text == system:
            out.append('<div class="msg msg-system"><div class="role">system</div>'
                       '<p class="muted">(the system prompt shown above the episodes)</p></div>')
            continue
        room = min(MESSAGE_CHARS, (EPISODE_CHARS - used) // 2)
        if room < 200:
            left = sum(len(str(m.get("content", "")) if isinstance(m, dict) else str(m)) for m in messages[i:])
            out.append(f'<p class="muted">… {len(messages) - i} more message(s), {left:,} characters, left out '
                       f"to keep the report small; the whole episode is {bounded(where, 300)}.</p>")
            break
        body = bounded(text, room, highlight_protocol)
        used += len(body)
        css = role if role in ("system", "user", "assistant") else "other"
        out.append(f'<div class="msg msg-{css}"><div class="role">{bounded(role, 40)}</div>'
                   f'<pre class="text">{body}</pre></div>')
    return "".join(out)


#: A cell value of an episode that has no such dimension (the eval step of an evaluation run's episode).
NOT_APPLICABLE = "n/a"


@dataclass
class Browser:
    """Indexed episodes of a report and the filter dimensions they span."""

    refs: list[Ref]
    bad_lines: dict[str, int]
    dims: dict[str, list[str]]

    @classmethod
    def build(cls, sources: Sequence[tuple[Path, Callable[[dict[str, Any]], dict[str, str]], tuple[str, ...]]]
              ) -> "Browser":
        """``sources``: (file, its cell of each row, the file's roles in its run)."""
        refs, bad = [], {}
        for path, dims, roles in sources:
            got, n_bad = index_file(path, dims, roles)
            refs += got
            if n_bad:
                bad[str(path)] = n_bad
        keys = list(dict.fromkeys(k for ref in refs for k in ref.dims))
        names: dict[str, list[str]] = {}
        for ref in refs:  # runs of two kinds (an evaluation and a training) have cells of different shapes
            ref.dims = {k: ref.dims.get(k, NOT_APPLICABLE) for k in keys}
            for k, v in ref.dims.items():
                if v not in names.setdefault(k, []):
                    names[k].append(v)
        return cls(refs, bad, names)


def browser_html(browser: Browser, budget: int = MAX_EPISODES,
                 dim_labels: dict[str, str] | None = None) -> tuple[str, str]:
    """The browser section and its CSS (the filter rules depend on the values present)."""
    if not browser.refs:
        return "<p class='muted'>No episodes in these runs.</p>", ""
    dim_labels = dim_labels or {}
    shown = select(browser.refs, budget)
    groups = [(k, dim_labels.get(k, k), v) for k, v in browser.dims.items() if len(v) > 1]
    kinds = [(key, label) for key, label, _ in KINDS] + list(OUTCOMES)
    css, inputs, bars = [_BASE_CSS], [], []
    for g, (key, title, values) in enumerate(groups):
        options = [(f"eb{g}-all", "all", len(shown), len(browser.refs))]
        for i, value in enumerate(values):
            total = sum(r.dims.get(key) == value for r in browser.refs)
            n = sum(r.dims.get(key) == value for r in shown)
            options.append((f"eb{g}-{i}", value, n, total))
            css.append(f"#eb{g}-{i}:checked~.eps .ep:not(.d{g}-{i}){{display:none}}")
        inputs += [f'<input type="radio" name="eb{g}" id="{oid}"{" checked" if oid.endswith("-all") else ""}>'
                   for oid, *_ in options]
        bars.append(_bar(title, options))
    options = [("ebk-all", "all", len(shown), len(browser.refs))]
    for key, label in kinds:
        total = sum(key in r.kinds for r in browser.refs)
        n = sum(key in r.kinds for r in shown)
        options.append((f"ebk-{key}", label, n, total))
        css.append(f"#ebk-{key}:checked~.eps .ep:not(.k-{key}){{display:none}}")
    inputs += [f'<input type="radio" name="ebk" id="{oid}"{" checked" if oid == "ebk-all" else ""}>'
               for oid, *_ in options]
    bars.append(_bar("kind", options))
    for oid in re.findall(r'id="([^"]+)"', "".join(inputs)):
        css.append(f"#{oid}:checked~.filters label[for={oid}]{{background:#1565c0;color:#fff;border-color:#1565c0}}")
    systems = _common_system(shown)
    items = []
    index = {key: {v: i for i, v in enumerate(values)} for key, _, values in groups}
    for ref in shown:
        try:
            row = read_row(ref)
        except (ValueError, OSError):
            continue
        classes = " ".join([f"d{g}-{index[key][ref.dims[key]]}" for g, (key, _, _) in enumerate(groups)]
                           + [f"k-{k}" for k in sorted(ref.kinds)])
        chips = [v for k, v in ref.dims.items() if len(browser.dims.get(k, [])) > 1]
        kinds_ = [label for key, label, _ in KINDS if key in ref.kinds]
        items.append(episode_html(row, classes, chips, systems, where=f"line {ref.line} of {ref.path}",
                                  open_=not items, kinds=kinds_))
    total = len(browser.refs)
    cells = len({r.cell for r in browser.refs})
    intro = (f"<p>{len(shown):,} of {total:,} episodes are in this page: "
             + (f"up to {max(1, budget // cells)} per {' × '.join(t for _, t, _ in groups) or 'file'} "
                f"({cells} cells), chosen to include every kind below, then the same questions in every cell."
                if len(shown) < total else "all of them.")
             + " Each filter shows how many of its episodes are in the page (shown / total).</p>")
    sys_html = (f"<details><summary>System prompt (the same in every episode shown)</summary>"
                f"<pre class='text'>{bounded(systems, MESSAGE_CHARS, highlight_protocol)}</pre></details>"
                if systems else "")
    bad = "".join(f"<p class='problem'>{bounded(p, 300)}: skipped {n} malformed line(s)</p>"
                  for p, n in browser.bad_lines.items())
    section = (intro + sys_html + bad + '<div class="eb">' + "".join(inputs)
               + '<div class="filters">' + "".join(bars) + "</div>"
               + '<div class="eps">' + "".join(items) + "</div>"
               + f'<p class="count"><b class="n"></b> of {len(items):,} episodes in this page match the filters.</p>'
               + "</div>")
    return section, "\n".join(css)


def _bar(title: str, options: list[tuple[str, str, int, int]]) -> str:
    labels = "".join(f'<label for="{oid}">{bounded(text, 60)} <small>{n}/{total}</small></label>'
                     for oid, text, n, total in options)
    return f'<div class="fbar"><span class="ftitle">{esc(title)}</span>{labels}</div>'


def _common_system(refs: Sequence[Ref]) -> str | None:
    """The system prompt when the first few episodes shown share one (it is then shown once)."""
    seen = set()
    for ref in refs[:20]:
        try:
            msgs = read_row(ref).get("messages")
        except (ValueError, OSError):
            continue
        if isinstance(msgs, list) and msgs and isinstance(msgs[0], dict) and msgs[0].get("role") == "system":
            seen.add(str(msgs[0].get("content")))
    return seen.pop() if len(seen) == 1 else None


_BASE_CSS = """
.eb{display:flex;flex-direction:column;counter-reset:shown}
.eb>input{position:absolute;opacity:0;pointer-events:none}
.eb .filters{order:1}.eb .count{order:2;margin:.3rem 0}.eb .eps{order:3}
.eb .ep{counter-increment:shown}.eb .count .n::before{content:counter(shown)}
.fbar{margin:.25rem 0;font-size:.82rem}.ftitle{display:inline-block;min-width:5.5rem;font-weight:600;color:#444}
.fbar label{display:inline-block;border:1px solid #bbb;border-radius:12px;padding:.05rem .55rem;margin:.1rem .15rem;
cursor:pointer;background:#fff}.fbar label small{color:inherit;opacity:.75}
"""


def iter_dims_eval(run_label: str | None) -> Callable[[dict[str, Any]], dict[str, str]]:
    """Cell of an eval-run episode: its policy and noise level (and run, when several)."""
    def dims(row: dict[str, Any]) -> dict[str, str]:
        out = {"run": run_label} if run_label else {}
        out["policy"] = cap(row.get("policy", "—"), 80)
        out["noise"] = noise_name(row.get("noise_level")) if "noise_level" in row else "noise —"
        return out
    return dims


def noise_name(level: Any) -> str:
    """'noise 0.5' for a level (as the comparison table names it).

    >>> noise_name(0.0), noise_name(0.5), noise_name("x")
    ('noise 0', 'noise 0.5', 'noise x')
    """
    return f"noise {level:g}" if isinstance(level, (int, float)) else f"noise {cap(level, 40)}"


def iter_dims_step(run_label: str | None, step_label: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    """Cell of a training run's eval episode: its eval step (and run, when several)."""
    def dims(row: dict[str, Any]) -> dict[str, str]:
        out = {"run": run_label} if run_label else {}
        out["step"] = step_label
        return out
    return dims

