"""Figures drawn with seaborn and matplotlib, rendered for the reports and for papers.

A :class:`Plot` holds one matplotlib figure and the hover texts of its marks. :meth:`Plot.html` gives
the figure as inline SVG for a self-contained page (no external reference, no script, so the page's
Content-Security-Policy holds); :meth:`Plot.save` writes it as a standalone SVG, PDF or PNG file.

Hover text: a mark gets a URL token (:meth:`Plot.link`) that matplotlib's SVG backend writes as an
``<a>`` around the mark; rendering turns each into a ``<g>`` whose first child is a ``<title>`` with the
(escaped) text, so a browser shows it when the pointer is over the point, line or bar.

Rendering is deterministic: matplotlib and seaborn are imported only when a figure is drawn (``harness
--help`` and :mod:`harness.stats` never load them), every figure is drawn and saved inside one
:func:`style` (the seaborn "whitegrid" style and "paper" context, a fixed ``svg.hashsalt`` for the ids
matplotlib derives from it, no date or software stamp in any format), so the same runs give the same
bytes. Text in SVG is kept as ``<text>`` (``svg.fonttype = 'none'``): it stays selectable and searchable
in the page, screen readers can read it, and the file stays small (no glyph outlines, no glyph ids to
clash between figures); the price is that the viewer's DejaVu Sans (or another sans-serif) draws it.
For a paper use PDF, which embeds the fonts as TrueType (``pdf.fonttype = 42``, editable text).

Inline, each figure's ids get a prefix made from its name and content, so several figures on one page
never share an id; ids nothing refers to are dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from harness.report.page import esc, esc_attr, visible

#: seaborn's "colorblind" palette, in order (distinguishable with the common colour-vision deficiencies).
PALETTE = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494",
           "#ece133", "#56b4e9")
#: Marker shapes and dash patterns (seaborn's ``(segment, gap, ...)`` form; "" is solid), in parallel, so
#: series stay apart in grey print too.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES: tuple[Any, ...] = ("", (4, 1.5), (1, 1), (3, 1.25, 1.5, 1.25), (5, 1, 1, 1))
GREY = "#777777"
FORMATS = ("svg", "pdf", "png")

RC = {"svg.hashsalt": "harness-report", "svg.fonttype": "none", "pdf.fonttype": 42, "text.parse_math": False,
      "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "axes.titleweight": "bold",
      "legend.frameon": False, "savefig.dpi": 150}
METADATA = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
            "png": {"Software": None}}
_TIP = re.compile(r'<a xlink:href="#tip-(\d+)"[^>]*>')
_DIGITS = re.compile(r"([0-9]+[.][0-9]{2})[0-9]+")


def color(i: int) -> str:
    """The i-th palette colour (cycling).

    >>> color(0), color(10)
    ('#0173b2', '#0173b2')
    """
    return PALETTE[i % len(PALETTE)]


def series_style(i: int) -> tuple[str, str, Any]:
    """Colour, marker and dash of the i-th series."""
    return color(i), MARKERS[i % len(MARKERS)], DASHES[i % len(DASHES)]


def linestyle(dash: Any) -> Any:
    """A seaborn dash spec as a matplotlib linestyle.

    >>> linestyle(""), linestyle((4, 1.5))
    ('-', (0, (4, 1.5)))
    """
    return "-" if not dash else (0, tuple(dash))


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The reports' matplotlib settings (seaborn whitegrid style, paper context, :data:`RC`), for the
    duration of a figure's drawing or saving; the process's own rcParams are left as they were."""
    import matplotlib
    import seaborn as sns

    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.1), **RC}
    with matplotlib.rc_context(rc):
        yield


def handle(col: str, marker: str | None, dash: Any, label: str, **kw: Any) -> Any:
    """A legend entry: a line (``dash``; None for none) with an optional marker."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=col, marker=marker, linestyle=linestyle(dash) if dash is not None else "none",
                  markeredgecolor="#222", markeredgewidth=0.5, label=short(label, 60), **kw)


def integer_steps(ax: Any) -> None:
    """Ticks on whole numbers only along x (training steps)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))


def short(text: Any, n: int) -> str:
    """``text`` (invisible characters made visible) cut to ``n`` characters with an ellipsis.

    >>> short("abcdef", 4), short("a\\x00", 9)
    ('abc…', 'a\\\\u0000')
    """
    text = visible(text)
    return text if len(text) <= n else text[: n - 1] + "…"


class Plot:
    """One matplotlib figure (``nrows`` x ``ncols`` axes, constrained layout) with hover texts.

    ``name`` is the file stem (``accuracy_by_step`` -> ``accuracy_by_step.svg``), ``title`` the figure's
    accessible name in the page, ``caption`` an optional note under it. Build inside :func:`style`.
    """

    def __init__(self, name: str, title: str, width: float, height: float, nrows: int = 1, ncols: int = 1,
                 caption: str | None = None, **subplots: Any):
        from matplotlib.figure import Figure

        self.name, self.title, self.caption = name, title, caption
        self.fig = Figure(figsize=(width, height), layout="constrained")
        axes = self.fig.subplots(nrows, ncols, squeeze=False, **subplots)
        self.axes = [ax for row in axes for ax in row]
        self.ax = self.axes[0]
        self.tips: list[str] = []
        self._linked: list[Any] = []
        self._svg: str | None = None

    def heading(self, text: str) -> None:
        """The figure's title, left-aligned above every panel and the legend."""
        self.fig.suptitle(text, x=0.01, ha="left", fontsize="medium", fontweight="bold")

    def legend(self, handles: Sequence[Any]) -> None:
        """The legend in rows, so the plots keep the figure's width and the legend travels with the figure's
        file: above the axes (under the heading) for one untitled panel, below the panels otherwise."""
        longest = max((len(h.get_label()) for h in handles), default=1)
        ncols = max(1, min(len(handles), int(self.fig.get_figwidth() * 72 / (longest * 5.5 + 36))))
        if len(self.axes) == 1 and not self.ax.get_title():
            self.ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01), borderaxespad=0,
                           ncols=ncols)
        else:
            self.fig.legend(handles=handles, loc="outside lower center", ncols=ncols)

    def link(self, artist: Any, texts: str | Sequence[str]) -> Any:
        """Give ``artist`` hover text: one text for a line, patch or text; one per point for a collection."""
        if isinstance(texts, str):
            artist.set_url(self._token(texts))
        else:
            artist.set_urls([self._token(t) for t in texts])
        self._linked.append(artist)
        return artist

    def _token(self, text: str) -> str:
        self.tips.append(text)
        return f"#tip-{len(self.tips) - 1}"

    def render(self, fmt: str = "svg") -> bytes:
        """The figure as a standalone document: SVG (hover texts as ``<title>``), PDF or PNG."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown figure format {fmt!r}; one of {', '.join(FORMATS)}")
        if fmt == "svg":
            return self.svg().encode("utf-8")
        return self._save(fmt, links=False)

    def _save(self, fmt: str, links: bool = True) -> bytes:
        saved = [(a, _urls(a)) for a in self._linked] if not links else []
        for a, _ in saved:  # PDF would turn the tokens into link annotations
            _set_urls(a, None)
        buf = io.BytesIO()
        try:
            with style():
                self.fig.savefig(buf, format=fmt, metadata=METADATA[fmt], facecolor="white")
        finally:
            for a, urls in saved:
                _set_urls(a, urls)
        return buf.getvalue()

    def svg(self) -> str:
        """The standalone SVG document (rendered once)."""
        if self._svg is None:
            text = self._save("svg").decode("utf-8")
            text = _TIP.sub(lambda m: f"<g><title>{esc_attr(self.tips[int(m.group(1))])}</title>", text)
            self._svg = text.replace("</a>", "</g>")
        return self._svg

    def inline(self) -> str:
        """The ``<svg>`` element for an HTML page: no prolog, metadata or namespaces (HTML gives inline SVG
        its namespace), ids prefixed, whitespace between elements dropped, coordinates to 0.01 pt."""
        text = self.svg()
        text = text[text.index("<svg"):]
        text = re.sub(r"\s*<metadata>.*?</metadata>|<style[^>]*>.*?</style>", "", text, flags=re.S)
        text = re.sub(r' xmlns(:xlink)?="[^"]*"', "", text)
        text = re.sub(r">\s+<", "><", re.sub(r"\s*\n\s*", " ", text)).strip()
        text = re.sub(r' transform="rotate\(-?0 [^"]*\)"|<defs></defs>', "", text)
        text = re.sub(r' (?:d|x|y|x1|x2|y1|y2|width|height)="[^"]*"',  # 0.01 pt is finer than any screen
                      lambda m: _DIGITS.sub(r"\1", m.group(0)), text)
        prefix = f"{re.sub(r'[^A-Za-z0-9]+', '-', self.name)}-{hashlib.sha1(text.encode()).hexdigest()[:6]}-"
        refs = set(re.findall(r'(?:url\(#|xlink:href="#)([^)"]+)', text))
        text = re.sub(r' id="([^"]*)"', lambda m: f' id="{prefix}{m.group(1)}"' if m.group(1) in refs else "", text)
        text = re.sub(r'(url\(#|xlink:href="#)([^)"]+)', lambda m: m.group(1) + prefix + m.group(2), text)
        return text.replace("<svg ", f'<svg class="chart" role="img" aria-label="{esc_attr(self.title)}" ', 1)

    def html(self) -> str:
        """``<figure>`` with the inline SVG and the escaped caption."""
        cap = f"<figcaption>{esc(self.caption)}</figcaption>" if self.caption else ""
        return f"<figure>{self.inline()}{cap}</figure>"

    def save(self, folder: Path, fmt: str = "svg", name: str | None = None) -> Path:
        """Write the figure as ``folder/NAME.FMT`` (atomically) and return the path."""
        from harness.core.io import atomic_write_bytes

        path = Path(folder) / f"{name or self.name}.{fmt}"
        atomic_write_bytes(path, self.render(fmt))
        return path


def _urls(artist: Any) -> Any:
    return artist.get_urls() if hasattr(artist, "get_urls") else artist.get_url()


def _set_urls(artist: Any, urls: Any) -> None:
    if hasattr(artist, "set_urls"):
        artist.set_urls(urls if urls is not None else [None])
    else:
        artist.set_url(urls)


def save_all(plots: Sequence[Plot], folder: Path, fmt: str = "svg") -> list[Path]:
    """Write every figure into ``folder`` (created) as ``NAME.FMT``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; one of {', '.join(FORMATS)}")
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [p.save(folder, fmt) for p in plots]
