"""``harness bench protocol``: the cost of parsing a turn with many unclosed opening tags.

Compares :func:`harness.episode.protocol.parse_turn` (tag positions paired in one pass) with the
lazy regular expression it replaced (``re.finditer(r"<think>(.*?)</think>", text, re.S)``, which
rescans the rest of the text from every unclosed opening tag), as microseconds per tag.
"""

from __future__ import annotations

import re
import time

from harness.core.results import machine_info, package_versions

#: The most unclosed tags one size may ask for: the lazy regex is quadratic (5,000 tags take about a
#: second on a laptop; 10^8 would take years).
MAX_TAGS = 20_000


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_protocol(sizes: tuple[int, ...] = (1000, 2000, 5000), repeats: int = 3) -> dict:
    from harness.episode.protocol import parse_turn

    lazy = re.compile(r"<think>(.*?)</think>", re.S)
    rows = []
    for n in sizes:
        text = "<think>" * n
        old = _best_of(lambda text=text: list(lazy.finditer(text)), repeats)
        new = _best_of(lambda text=text: parse_turn(text), repeats)
        rows.append({"unclosed_tags": n, "lazy_regex_s": old, "parse_turn_s": new,
                     "lazy_regex_us_per_tag": 1e6 * old / n, "parse_turn_us_per_tag": 1e6 * new / n,
                     "ratio": old / new if new else None})
    return {"machine": machine_info(), "versions": package_versions(), "rows": rows}
