"""HTML building blocks shared by every report: escaping, caps, number formats, tables, the page shell.

Every piece of run or model text goes through :func:`esc` (element text) or :func:`esc_attr`
(attributes, ``<title>``): HTML-escaped, and control, bidirectional-override and zero-width
characters shown as visible ``\\uXXXX`` escapes, so a NUL byte or a right-to-left override in a
model's answer cannot hide or reorder what the reader sees. :func:`cap` shortens any field a model
wrote, so a report stays small whatever a run holds.

Pages have no script; a Content-Security-Policy (:data:`CSP`) allows inline styles and ``data:``
images only, so a report opens offline and loads nothing.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
#: Cells that read as numbers (right-aligned): numbers, signed differences, intervals, '—'.
_NUMBERISH = re.compile(r"[-+0-9.eE, \[\]—/]*")

#: Characters that render invisibly or reorder text: C0/C1 controls (tab, newline and carriage return
#: excepted), DEL, soft hyphen, bidi marks/overrides/isolates, zero-width characters, line/paragraph
#: separators, invisible operators, BOM, interlinear annotations, lone surrogates and tag characters.
INVISIBLE_RE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1240px;
padding:1rem 2rem;color:#222;line-height:1.4}
h1{margin-bottom:.2rem;font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{margin:1.2rem 0 .4rem}
.muted{color:#666;font-size:.9rem}nav a{margin-right:1rem}code{font-size:.85em}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.6rem 0;font-size:.92rem}
dl.meta dt{font-weight:600;color:#444}dl.meta dd{margin:0}
table.data{border-collapse:collapse;margin:.5rem 0;font-size:.88rem}
table.data th,table.data td{border:1px solid #d0d0d0;padding:.2rem .55rem;text-align:right;vertical-align:top}
table.data th{background:#f2f2f2}table.data td.l,table.data th.l{text-align:left}
table.cmp thead th{text-align:center}table.cmp thead th.l{text-align:left}
table.data tr.group th{background:#e6ecf5;text-align:left;font-size:.8rem;text-transform:uppercase;
letter-spacing:.04em;color:#345}
table.data td.best{background:#e3f4e6;font-weight:600}table.data td:not(.l){white-space:nowrap}
table.data .ci{display:block;color:#666;font-size:.75rem;font-weight:normal;white-space:nowrap}
.figs{display:flex;flex-wrap:wrap;gap:.8rem;align-items:flex-start;margin:.4rem 0}
figure{margin:0}figcaption{font-size:.8rem;color:#555;max-width:620px}
svg.chart{background:#fff;border:1px solid #e4e4e4;max-width:100%;height:auto}
svg.chart *{stroke-linejoin:round;stroke-linecap:butt}
.warn{background:#fff8e1;border-left:4px solid #f9a825;padding:.4rem .7rem;margin:.5rem 0;font-size:.9rem}
.problem{color:#c62828}
details{border:1px solid #ddd;border-radius:4px;margin:.3rem 0;padding:.2rem .6rem}
details>summary{cursor:pointer;font-size:.85rem}details.ep>div{font-size:.85rem;margin:.3rem 0}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.msg{margin:.4rem 0;border-left:4px solid #bbb;padding-left:.6rem}
.msg-system{border-color:#999}.msg-user{border-color:#1565c0}.msg-assistant{border-color:#6a1b9a}
.role{font-size:.72rem;text-transform:uppercase;color:#666}
pre.text{white-space:pre-wrap;word-break:break-word;margin:.2rem 0;font-size:.8rem}
.tag{font-weight:bold}.tag-think{background:#ede7f6;color:#4527a0}
.tag-search{background:#e3f2fd;color:#0d47a1}.tag-information{background:#e8f5e9;color:#1b5e20}
.tag-answer{background:#fff3e0;color:#e65100}
.cc{background:#ffebee;color:#b71c1c;border:1px solid #ef9a9a;border-radius:2px;font-family:ui-monospace,monospace;
font-size:.85em;padding:0 .1em}
.chip{display:inline-block;font-size:.72rem;border-radius:3px;padding:0 .3rem;margin-left:.25rem;background:#eceff1;
color:#37474f}.chip.kind{background:#fff3e0;color:#8d4a00}
"""


def visible(text: Any) -> str:
    """``text`` with every invisible or reordering character replaced by a ``\\uXXXX`` escape.

    >>> visible("a\\x00b\\u202ec")
    'a\\\\u0000b\\\\u202ec'
    """
    return INVISIBLE_RE.sub(lambda m: _code(m.group(0)), str(text))


def _code(ch: str) -> str:
    n = ord(ch)
    return f"\\u{n:04x}" if n <= 0xFFFF else f"\\U{n:08x}"


def esc(text: Any) -> str:
    """HTML-escaped element text; invisible characters become marked, visible escapes.

    >>> esc("<b>\\u202e</b>")
    '&lt;b&gt;<span class="cc" title="U+202E">\\\\u202e</span>&lt;/b&gt;'
    """
    return INVISIBLE_RE.sub(_cc_span, html.escape(str(text)))


def _cc_span(m: re.Match[str]) -> str:
    return f'<span class="cc" title="U+{ord(m.group(0)):04X}">{_code(m.group(0))}</span>'


def esc_attr(text: Any) -> str:
    """Text for an attribute value or a ``<title>``: escapes visible, quotes escaped.

    >>> esc_attr('say "hi"\\x00')
    'say &quot;hi&quot;\\\\u0000'
    """
    return html.escape(visible(text), quote=True)


def cap(text: Any, limit: int) -> str:
    """``str(text)`` cut to ``limit`` characters, saying how many were left out.

    >>> cap("abcdef", 3)
    'abc… [3 more characters]'
    """
    text = "" if text is None else str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters]"


def bounded(text: Any, limit: int, render: Callable[[str], str] = esc) -> str:
    """``render(cap(text, limit))``, with less of the text kept while the HTML is longer than
    ``2 * limit`` characters: escaping (``<`` is 4 characters, an invisible one about 40) cannot make a
    capped field large.

    >>> bounded("<" * 1000, 40)  # 40 characters would be 160 of HTML: 20 are kept
    '&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;&lt;… [980 more characters]'
    >>> len(bounded("\\x00" * 10_000, 100)) <= 2 * 100 + 64
    True
    """
    text = "" if text is None else str(text)
    n = min(len(text), limit)
    while True:
        out = render(cap(text, n))
        if len(out) <= 2 * limit + 64 or n == 0:
            return out
        n //= 2


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: '—' for missing, integers (and whole floats from 10 up) as is, floats to ``digits``
    decimals (4 significant digits when the value is small or huge), anything else as text.

    >>> fmt(None), fmt(3), fmt(0.46875), fmt(1234.5678), fmt(0.00012), fmt(150.0), fmt(True), fmt("x")
    ('—', '3', '0.469', '1235', '0.00012', '150', 'True', 'x')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) >= 10:
        return str(int(value))
    if value != 0 and (abs(value) < 0.01 or abs(value) >= 1000):
        return f"{value:.4g}"
    return f"{value:.{digits}f}"


def fmt_interval(low: Any, high: Any, digits: int = 3) -> str:
    """An interval with both ends to the same ``digits`` decimals (:func:`fmt` alone would print a small end to 4
    significant digits beside a 3-decimal one); '—' for a missing end.

    >>> fmt_interval(0.008069, 0.218), fmt_interval(0.0, 1.0), fmt_interval(None, 0.5), fmt_interval(-1.25, 12.5)
    ('[0.008, 0.218]', '[0.000, 1.000]', '[—, 0.500]', '[-1.250, 12.500]')
    """
    def end(v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            return "—"
        return fmt(float(v)) if math.isinf(v) else f"{v:.{digits}f}"

    return f"[{end(low)}, {end(high)}]"


def describe(value: Any) -> str:
    """A short label for ``task``/``model`` values of results.json (strings, dicts or lists of dicts).

    >>> describe({"name": "apollo3", "version": 1}), describe([{"backend": "hf", "model": "m"}])
    ('apollo3 v1', 'm (hf)')
    >>> describe([{"backend": "scripted", "model": "a"}, {"backend": "scripted", "model": "b"}])
    'a, b (scripted)'
    """
    if isinstance(value, list):
        items = [v for v in value if v is not None]
        backends = {v.get("backend") for v in items if isinstance(v, dict)}
        if len(backends) == 1 and all(isinstance(v, dict) and "model" in v for v in items):
            return ", ".join(str(v["model"]) for v in items) + f" ({backends.pop()})"
        return ", ".join(describe(v) for v in items) or "—"
    if not isinstance(value, dict):
        return fmt(value)
    main = value.get("name") or value.get("model")
    if main is None:
        return json.dumps(value, sort_keys=True, default=str)
    suffix = f" v{value['version']}" if "version" in value else ""
    return f"{main}{suffix}" + (f" ({value['backend']})" if "backend" in value else "")


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], left: int = 1, raw: bool = False) -> str:
    """An HTML table. Columns of numbers (missing cells aside) are right-aligned, the first ``left``
    columns and any column holding text are left-aligned. Cells are escaped unless ``raw`` (then they
    must already be HTML).

    >>> html = table(["a", "b"], [["<x>", 1]])
    >>> html[:html.index("<tbody>")]
    '<table class="data"><thead><tr><th class="l">a</th><th>b</th></tr></thead>'
    >>> html[html.index("<tbody>"):]
    '<tbody><tr><td class="l">&lt;x&gt;</td><td>1</td></tr></tbody></table>'
    """
    rows = [list(r) for r in rows]
    texty = {i for r in rows for i, v in enumerate(r)
             if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool))
             and not (isinstance(v, str) and _NUMBERISH.fullmatch(v))}

    def cell(tag: str, i: int, value: Any) -> str:
        text = value if raw else esc(fmt(value))
        return f'<{tag} class="l">{text}</{tag}>' if i < left or (i in texty and not raw) else f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", i, h if raw else str(h)) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def frame_table(frame: Any, left: int = 1) -> str:
    """An HTML table of a pandas DataFrame (its columns and values, index dropped), cells formatted."""
    rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return table([str(c) for c in frame.columns], rows, left=left)


def _plain(v: Any) -> Any:
    """A Python scalar for numpy scalars and NaN-free values.

    >>> import numpy as np
    >>> _plain(np.int64(3)), _plain(float("nan"))
    (3, None)
    """
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def note(text: str, kind: str = "muted") -> str:
    """A paragraph of escaped text (``kind``: muted, warn or problem)."""
    return f'<p class="{kind}">{esc(text)}</p>' if kind != "warn" else f'<div class="warn">{esc(text)}</div>'


#: The generator tag every page carries: how ``harness report -o FILE`` knows FILE is a page it may replace.
GENERATOR = "harness report"


def is_report(path) -> bool:
    """True when the file at ``path`` is a page the harness wrote (its head carries :data:`GENERATOR`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in head


def page(title: str, body: Sequence[str], extra_css: str = "") -> str:
    """The complete HTML document: charset, CSP, title, inline CSS, the body parts joined."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="{GENERATOR}">'
            f"<title>{esc_attr(title)}</title><style>{CSS}{extra_css}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def generated_line(sources: Sequence[str]) -> str:
    """'Generated <time> from <sources>' as a muted paragraph."""
    when = datetime.now().isoformat(timespec="seconds")
    return (f'<p class="muted">Generated {esc(when)} from '
            + ", ".join(f"<code>{esc(s)}</code>" for s in sources) + "</p>")
