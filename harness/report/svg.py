"""Inline SVG charts for the reports: crisp at any zoom, no script, hover text from a ``<title>`` per point.

A :class:`Chart` collects marks (lines, bands, points with error bars, bars, vertical rules, text)
in data coordinates, works out its axis ranges and "nice" ticks, and renders one ``<svg>`` element.
:func:`heatmap` draws a labelled grid of counts. Colours, marker shapes and dash patterns come in
parallel lists, so series stay distinguishable in grey print and for colour-blind readers.

>>> c = Chart(title="acc", integer_x=True)
>>> c.line([0, 10, 20], [0.1, 0.5, 0.2], color=PALETTE[0])
>>> c.points([10], [0.5], color=PALETTE[0], titles=["peak 0.5 @ 10"])
>>> svg = c.render()
>>> svg.startswith("<svg") and "<title>peak 0.5 @ 10</title>" in svg
True
>>> nice_ticks(0, 23, integer=True)
[0, 5, 10, 15, 20]
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from harness.report.page import esc, esc_attr

#: Tableau-10, in order.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
MARKERS = ("circle", "square", "triangle", "diamond", "down", "star", "cross")
DASHES = ("", "7 3", "2 2", "9 3 2 3", "4 4")


def color(i: int) -> str:
    """The i-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """About ``n`` round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten).

    >>> nice_ticks(0, 1)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> nice_ticks(0, 3, integer=True)
    [0, 1, 2, 3]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [int(lo)] if integer and lo == int(lo) else [lo]
    raw = (hi - lo) / max(n, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integer:
        step = max(1, math.ceil(step))
    start = math.ceil(lo / step - 1e-9) * step
    ticks, k = [], 0
    while start + k * step <= hi + 1e-9 * max(1.0, abs(hi)):
        v = start + k * step
        ticks.append(int(round(v)) if integer else round(v, 10))
        k += 1
    return ticks


def tick_label(v: float) -> str:
    """A short tick label.

    >>> tick_label(0.25), tick_label(3.0), tick_label(1500), tick_label(0.0001)
    ('0.25', '3', '1500', '1e-04')
    """
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    if abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:.4g}"


def marker(shape: str, x: float, y: float, r: float, fill: str, stroke: str = "#222", title: str | None = None,
           opacity: float = 1.0) -> str:
    """One marker of ``shape`` centred at (x, y) in pixels, with optional hover text."""
    t = f"<title>{esc_attr(title)}</title>" if title else ""
    common = f'fill="{fill}" stroke="{stroke}" stroke-width="0.8"' + (f' opacity="{opacity:g}"' if opacity < 1 else "")
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" {common}>{t}</circle>'
    if shape == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" {common}>{t}</rect>'
    if shape == "cross":
        d = r * 0.9
        return (f'<path d="M{x - d:.1f},{y - d:.1f}L{x + d:.1f},{y + d:.1f}M{x - d:.1f},{y + d:.1f}L{x + d:.1f},'
                f'{y - d:.1f}" stroke="{fill}" stroke-width="2.2" fill="none">{t}</path>')
    pts = _polygon(shape, x, y, r)
    return f'<path d="M{"L".join(f"{px:.1f},{py:.1f}" for px, py in pts)}Z" {common}>{t}</path>'


def _polygon(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    if shape == "diamond":
        r *= 1.25
        return [(x, y - r), (x + r, y), (x, y + r), (x - r, y)]
    if shape in ("triangle", "down"):
        r *= 1.3
        s = 1 if shape == "triangle" else -1
        return [(x, y - s * r), (x + 0.87 * r, y + s * 0.5 * r), (x - 0.87 * r, y + s * 0.5 * r)]
    if shape == "star":
        r *= 1.6
        return [(x + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
                 y - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5)) for i in range(10)]
    raise ValueError(f"unknown marker shape {shape!r}")


def swatch(col: str, shape: str | None = None, dash: str = "") -> str:
    """A small inline SVG legend swatch: a line segment (dashed or not) with an optional marker."""
    line = f'<line x1="1" y1="7" x2="27" y2="7" stroke="{col}" stroke-width="2" stroke-dasharray="{dash}"/>'
    mark = marker(shape, 14, 7, 4, col) if shape else ""
    return f'<span class="sw"><svg width="28" height="14" viewBox="0 0 28 14">{line}{mark}</svg></span>'


def legend(items: Sequence[tuple[str, str, str | None, str]]) -> str:
    """An HTML legend of (label, colour, marker shape or None, dash) items; labels are escaped."""
    return '<div class="legend">' + "".join(f"<span>{swatch(c, s, d)}{esc(label)}</span>"
                                            for label, c, s, d in items) + "</div>"


class Chart:
    """One panel with x/y axes. Marks are added in data coordinates; :meth:`render` returns SVG.

    ``xcats``/``ycats`` make an axis categorical (values are then indices 0..k-1, labelled by the
    categories); ``integer_x`` keeps x ticks on integers (training steps).
    """

    def __init__(self, width: int = 560, height: int = 300, title: str = "", xlabel: str = "", ylabel: str = "",
                 xlim: tuple[float, float] | None = None, ylim: tuple[float | None, float | None] | None = None,
                 integer_x: bool = False, xcats: Sequence[str] | None = None, ycats: Sequence[str] | None = None,
                 left: int = 56, bottom: int = 42):
        self.width, self.height, self.title, self.xlabel, self.ylabel = width, height, title, xlabel, ylabel
        self.xlim, self.ylim, self.integer_x = xlim, ylim, integer_x
        self.xcats, self.ycats = list(xcats) if xcats else None, list(ycats) if ycats else None
        self.left, self.right, self.top, self.bottom = left, 14, 28, bottom
        self._marks: list[Callable[[Callable[[float], float], Callable[[float], float]], str]] = []
        self._xs: list[float] = []
        self._ys: list[float] = []

    # ------------------------------------------------------------------ marks
    def _extent(self, xs: Sequence[Any], ys: Sequence[Any]) -> None:
        self._xs += [float(x) for x in xs if _finite(x)]
        self._ys += [float(y) for y in ys if _finite(y)]

    def line(self, xs: Sequence[Any], ys: Sequence[Any], color: str, width: float = 1.8, dash: str = "",
             opacity: float = 1.0, title: str | None = None) -> None:
        """A polyline; missing (None/NaN) values break it into segments."""
        self._extent(xs, ys)
        pts = list(zip(xs, ys))

        def draw(sx, sy):
            paths, cur = [], []
            for x, y in pts:
                if _finite(x) and _finite(y):
                    cur.append(f"{sx(x):.1f},{sy(y):.1f}")
                elif cur:
                    paths.append(cur)
                    cur = []
            paths.append(cur)
            t = f"<title>{esc_attr(title)}</title>" if title else ""
            return "".join(f'<path d="M{"L".join(p)}" fill="none" stroke="{color}" stroke-width="{width}" '
                           f'stroke-dasharray="{dash}" opacity="{opacity:g}" stroke-linejoin="round">{t}</path>'
                           for p in paths if len(p) > 1)
        self._marks.append(draw)

    def band(self, xs: Sequence[Any], lo: Sequence[Any], hi: Sequence[Any], color: str, opacity: float = 0.15) -> None:
        """A shaded region between ``lo`` and ``hi`` (rows with a missing bound are skipped)."""
        rows = [(x, a, b) for x, a, b in zip(xs, lo, hi) if _finite(x) and _finite(a) and _finite(b)]
        self._extent([r[0] for r in rows], [r[1] for r in rows] + [r[2] for r in rows])

        def draw(sx, sy):
            if len(rows) < 2:
                return ""
            top = [f"{sx(x):.1f},{sy(b):.1f}" for x, _, b in rows]
            bottom = [f"{sx(x):.1f},{sy(a):.1f}" for x, a, _ in reversed(rows)]
            return f'<path d="M{"L".join(top + bottom)}Z" fill="{color}" opacity="{opacity:g}" stroke="none"/>'
        self._marks.append(draw)

    def points(self, xs: Sequence[Any], ys: Sequence[Any], color: str, shape: str = "circle", size: float = 3.5,
               titles: Sequence[str] | None = None, stroke: str = "#222", opacity: float = 1.0) -> None:
        """Markers with hover text."""
        self._extent(xs, ys)
        titles = list(titles) if titles is not None else [None] * len(xs)

        def draw(sx, sy):
            return "".join(marker(shape, sx(x), sy(y), size, color, stroke, t, opacity)
                           for x, y, t in zip(xs, ys, titles) if _finite(x) and _finite(y))
        self._marks.append(draw)

    def errorbars(self, xs: Sequence[Any], ys: Sequence[Any], lo: Sequence[Any], hi: Sequence[Any], color: str,
                  shape: str = "circle", size: float = 4.5, titles: Sequence[str] | None = None) -> None:
        """Points with vertical interval bars (a bar is left out where a bound is missing)."""
        self._extent(xs, list(ys) + [v for v in lo if _finite(v)] + [v for v in hi if _finite(v)])
        titles = list(titles) if titles is not None else [None] * len(xs)

        def draw(sx, sy):
            out = []
            for x, y, a, b, t in zip(xs, ys, lo, hi, titles):
                if _finite(a) and _finite(b) and _finite(x):
                    px = sx(x)
                    out.append(f'<path d="M{px:.1f},{sy(a):.1f}V{sy(b):.1f}M{px - 4:.1f},{sy(a):.1f}H{px + 4:.1f}'
                               f'M{px - 4:.1f},{sy(b):.1f}H{px + 4:.1f}" stroke="{color}" stroke-width="1.6" '
                               f'fill="none"/>')
                if _finite(x) and _finite(y):
                    out.append(marker(shape, sx(x), sy(y), size, color, "#222", t))
            return "".join(out)
        self._marks.append(draw)

    def bars(self, xs: Sequence[Any], heights: Sequence[Any], color: str, width: float = 0.8,
             titles: Sequence[str] | None = None, base: float = 0.0) -> None:
        """Vertical bars of ``width`` data units centred on ``xs``."""
        self._extent(list(xs), list(heights) + [base])
        titles = list(titles) if titles is not None else [None] * len(xs)

        def draw(sx, sy):
            out = []
            for x, h, t in zip(xs, heights, titles):
                if not (_finite(x) and _finite(h)):
                    continue
                x0, x1 = sx(x - width / 2), sx(x + width / 2)
                y0, y1 = sorted((sy(base), sy(h)))
                tt = f"<title>{esc_attr(t)}</title>" if t else ""
                out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0, 0.5):.1f}" '
                           f'height="{max(y1 - y0, 0.5):.1f}" fill="{color}">{tt}</rect>')
            return "".join(out)
        self._marks.append(draw)

    def vline(self, x: float, color: str, dash: str = "5 3", width: float = 1.3, title: str | None = None,
              label: str | None = None) -> None:
        """A vertical rule across the plot at ``x`` (with hover text and an optional label at the top)."""
        self._extent([x], [])

        def draw(sx, sy):
            px = sx(x)
            t = f"<title>{esc_attr(title)}</title>" if title else ""
            text = (f'<text x="{px + 3:.1f}" y="{self.top + 10}" font-size="10" fill="{color}">{esc_attr(label)}</text>'
                    if label else "")
            return (f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{self.top}" y2="{self.height - self.bottom}" '
                    f'stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}">{t}</line>{text}')
        self._marks.append(draw)

    def hline(self, y: float, color: str = "#999", dash: str = "4 3", title: str | None = None) -> None:
        """A horizontal rule across the plot at ``y``."""
        self._extent([], [y])

        def draw(sx, sy):
            py = sy(y)
            t = f"<title>{esc_attr(title)}</title>" if title else ""
            return (f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{py:.1f}" y2="{py:.1f}" '
                    f'stroke="{color}" stroke-width="1" stroke-dasharray="{dash}">{t}</line>')
        self._marks.append(draw)

    def rug(self, x: float, color: str, shape: str = "down", title: str | None = None) -> None:
        """A marker pinned to the top edge of the plot at ``x`` (e.g. a fault)."""
        self._extent([x], [])

        def draw(sx, sy):
            return marker(shape, sx(x), self.top + 6, 5, color, "#222", title)
        self._marks.append(draw)

    def text(self, x: float, y: float, s: str, color: str = "#333", size: int = 10, dx: float = 0, dy: float = 0,
             anchor: str = "start") -> None:
        """A text label at a data point (offset in pixels)."""
        def draw(sx, sy):
            return (f'<text x="{sx(x) + dx:.1f}" y="{sy(y) + dy:.1f}" font-size="{size}" fill="{color}" '
                    f'text-anchor="{anchor}">{esc_attr(s)}</text>')
        self._marks.append(draw)

    # ------------------------------------------------------------------ render
    def _limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        if self.xcats is not None:
            xl = (-0.5, len(self.xcats) - 0.5)
        else:
            xl = self.xlim or ((min(self._xs), max(self._xs)) if self._xs else (0.0, 1.0))
            if xl[1] <= xl[0]:
                xl = (xl[0] - 1, xl[1] + 1)
        if self.ycats is not None:
            yl = (-0.5, len(self.ycats) - 0.5)
        else:
            lo, hi = self.ylim or (None, None)
            dlo, dhi = (min(self._ys), max(self._ys)) if self._ys else (0.0, 1.0)
            lo = dlo if lo is None else lo
            hi = dhi if hi is None else hi
            if hi <= lo:  # one value: centre it, so ticks fall on both sides of it
                half = (abs(lo) * 0.1 or 1.0) / 2
                lo, hi = lo - half, hi + half
            pad = (hi - lo) * 0.04
            yl = (lo - (pad if self.ylim is None or self.ylim[0] is None else 0),
                  hi + (pad if self.ylim is None or self.ylim[1] is None else 0))
        return xl, yl

    def render(self) -> str:
        """The ``<svg>`` element."""
        (x0, x1), (y0, y1) = self._limits()
        left, right, top, bottom = self.left, self.width - self.right, self.top, self.height - self.bottom
        xpad = 0 if self.xcats is not None else 6

        def sx(x: float) -> float:
            return left + xpad + (float(x) - x0) / (x1 - x0) * (right - left - 2 * xpad)

        def sy(y: float) -> float:
            return bottom - (float(y) - y0) / (y1 - y0) * (bottom - top)

        out = [f'<svg class="chart" viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
               f'height="{self.height}" role="img" aria-label="{esc_attr(self.title)}">',
               f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="#fafafa" '
               f'stroke="#ccc"/>']
        out += self._grid(sx, sy, (x0, x1), (y0, y1))
        out += [draw(sx, sy) for draw in self._marks]
        out.append(f'<text x="{left}" y="17" font-size="13" font-weight="600" fill="#222">{esc_attr(self.title)}</text>')
        if self.xlabel:
            out.append(f'<text x="{(left + right) / 2:.0f}" y="{self.height - 6}" font-size="11" fill="#444" '
                       f'text-anchor="middle">{esc_attr(self.xlabel)}</text>')
        if self.ylabel:
            out.append(f'<text x="12" y="{(top + bottom) / 2:.0f}" font-size="11" fill="#444" text-anchor="middle" '
                       f'transform="rotate(-90 12 {(top + bottom) / 2:.0f})">{esc_attr(self.ylabel)}</text>')
        out.append("</svg>")
        return "".join(out)

    def _grid(self, sx, sy, xl: tuple[float, float], yl: tuple[float, float]) -> list[str]:
        left, right, top, bottom = self.left, self.width - self.right, self.top, self.height - self.bottom
        out = []
        if self.xcats is not None:
            xt = [(i, c) for i, c in enumerate(self.xcats)]
        else:
            xt = [(v, tick_label(v)) for v in nice_ticks(xl[0], xl[1], n=max(2, (right - left) // 70),
                                                        integer=self.integer_x)]
        for v, label in xt:
            px = sx(v)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{bottom}" stroke="#e8e8e8"/>'
                       f'<text x="{px:.1f}" y="{bottom + 13}" font-size="10" fill="#555" text-anchor="middle">'
                       f'{esc_attr(_short(label, 18))}<title>{esc_attr(label)}</title></text>')
        if self.ycats is not None:
            yt = [(i, c) for i, c in enumerate(self.ycats)]
        else:
            yt = [(v, tick_label(v)) for v in nice_ticks(yl[0], yl[1], n=max(2, (bottom - top) // 45))]
        for v, label in yt:
            py = sy(v)
            out.append(f'<line x1="{left}" x2="{right}" y1="{py:.1f}" y2="{py:.1f}" stroke="#e8e8e8"/>'
                       f'<text x="{left - 4}" y="{py + 3:.1f}" font-size="10" fill="#555" text-anchor="end">'
                       f'{esc_attr(_short(label, 10))}<title>{esc_attr(label)}</title></text>')
        return out


def heatmap(rows: Sequence[str], cols: Sequence[str], counts: Sequence[Sequence[int]], title: str,
            xlabel: str = "", col_width: int = 30, row_label_width: int = 190) -> str:
    """A grid of counts, one row per series, shaded by each cell's share of its row; hover shows
    the count and share."""
    cw, rh = col_width, 22
    width = row_label_width + cw * len(cols) + 60
    height = 34 + rh * len(rows) + 34
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{esc_attr(title)}">',
           f'<text x="8" y="17" font-size="13" font-weight="600" fill="#222">{esc_attr(title)}</text>']
    top = 30
    for j, c in enumerate(cols):
        out.append(f'<text x="{row_label_width + j * cw + cw / 2:.0f}" y="{top + rh * len(rows) + 14}" font-size="10" '
                   f'fill="#555" text-anchor="middle">{esc_attr(c)}</text>')
    for i, (label, row) in enumerate(zip(rows, counts)):
        total = sum(row) or 1
        y = top + i * rh
        out.append(f'<text x="{row_label_width - 6}" y="{y + 15}" font-size="11" fill="#333" text-anchor="end">'
                   f'{esc_attr(_short(label, 30))}<title>{esc_attr(label)}</title></text>')
        for j, n in enumerate(row):
            share = n / total
            fill = _blue(share)
            x = row_label_width + j * cw
            out.append(f'<rect x="{x}" y="{y}" width="{cw - 1}" height="{rh - 1}" fill="{fill}">'
                       f'<title>{esc_attr(f"{label}: {n} episode(s) with {cols[j]} searches ({share:.0%})")}</title>'
                       f'</rect>')
            if n:
                ink = "#fff" if share > 0.45 else "#222"
                out.append(f'<text x="{x + cw / 2 - 0.5:.1f}" y="{y + 15}" font-size="10" fill="{ink}" '
                           f'text-anchor="middle">{n}</text>')
    if xlabel:
        out.append(f'<text x="{row_label_width + cw * len(cols) / 2:.0f}" y="{height - 5}" font-size="11" fill="#444" '
                   f'text-anchor="middle">{esc_attr(xlabel)}</text>')
    out.append("</svg>")
    return "".join(out)


def _blue(share: float) -> str:
    """White to dark blue by share in [0, 1].

    >>> _blue(0), _blue(1)
    ('#ffffff', '#08519c')
    """
    share = min(max(share, 0.0), 1.0)
    r, g, b = (int(round(255 + (t - 255) * share)) for t in (8, 81, 156))
    return f"#{r:02x}{g:02x}{b:02x}"


def _short(text: Any, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def standalone_svg(fragment: str) -> str | None:
    """The first ``<svg>`` element of an HTML fragment as a standalone SVG document (None if there is none),
    for documents that cannot hold the HTML page.

    >>> standalone_svg('<figure><svg class="chart" viewBox="0 0 1 1"></svg></figure>').splitlines()[1]
    '<svg xmlns="http://www.w3.org/2000/svg" style="background:#fff" class="chart" viewBox="0 0 1 1"></svg>'
    >>> standalone_svg("<p>no chart</p>") is None
    True
    """
    found = standalone_svgs(fragment)
    return found[0] if found else None


def standalone_svgs(fragment: str) -> list[str]:
    """Every ``<svg>`` element of an HTML fragment (a figure with several panels), each as a standalone
    SVG document on a white background (the page's background does not travel with it)."""
    import re

    out = []
    for found in re.finditer(r"<svg.*?</svg>", fragment or "", re.S):
        text = found.group(0).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" style="background:#fff" ', 1)
        out.append('<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n")
    return out


def figure(svg: str, caption: str | None = None) -> str:
    """An SVG chart wrapped in ``<figure>`` with an optional escaped caption."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg}{cap}</figure>"


def figures(items: Sequence[str]) -> str:
    """Figures side by side, wrapping."""
    return '<div class="figs">' + "".join(items) + "</div>"
