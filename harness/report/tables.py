"""The report's tables: policies x noise levels against grouped retry-aware metrics; peak, collapse and
faults of training runs; seed aggregates.

The comparison table has one column per (run, policy, noise level) and one row per metric of
:mod:`harness.scoring.metrics`, grouped (outcome, search behaviour, retry behaviour, rewards). A
proportion gets its 95% Wilson interval where its denominator is known (``n`` or ``n_<metric>``); a
reward mean gets a normal interval from its standard deviation. In each row the best value is marked
among comparable cells only (:func:`comparable_groups`, for metrics where higher or lower is better):
policies at the same noise level (never one noise level against another), the weighted
``reward_total`` only between columns whose reward weights agree, and what measures searches only
between policies that searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from harness.report.page import esc, fmt, fmt_interval
from harness.stats.intervals import clip01, mean_interval, t_interval, wilson

UP, DOWN, NONE = 1, -1, 0


@dataclass(frozen=True)
class Metric:
    """One row: the metric's key, what it means, its denominator and which direction is better."""

    key: str
    meaning: str
    denominator: Callable[[dict[str, Any]], Any] | None = None
    better: int = NONE


def _n(m: dict[str, Any]) -> Any:
    return m.get("n")


def _searched(m: dict[str, Any]) -> Any:
    hist, n = m.get("searches_hist"), m.get("n")
    if not isinstance(hist, dict) or not isinstance(n, (int, float)):
        return None
    return n - (hist.get("0") or 0)


def _parsed(m: dict[str, Any]) -> Any:
    n, unparsed = m.get("n"), m.get("llm_unparsed")
    return n - unparsed if isinstance(n, (int, float)) and isinstance(unparsed, (int, float)) else None


def _cond(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda m: m.get(f"n_{key}")


GROUPS: tuple[tuple[str, tuple[Metric, ...]], ...] = (
    ("Outcome", (
        Metric("accuracy", "P(correct)", _n, UP),
        Metric("answer_rate", "P(ended with an answer)", _n, UP),
        Metric("unsupported_wrong", "P(wrong and gold never seen)", _n, DOWN),
        Metric("give_up_rate", "P(no answer: no action, max turns, token budget)", _n, DOWN),
        Metric("error_rate", "P(ended by an error)", _n, DOWN),
        Metric("judge_error_rate", "P(the judge raised)", _n, DOWN),
    )),
    ("Search behaviour", (
        Metric("searches_per_episode", "mean searches"),
        Metric("first_search_gold", "P(gold in first search | searched)", _searched, UP),
        Metric("any_search_gold", "P(gold seen in any search)", _n, UP),
        Metric("query_diversity", "unique queries / searches (>= 2 searches)", None, UP),
        Metric("format_validity", "well-formed assistant turns", None, UP),
        Metric("mean_turns", "assistant turns"),
        Metric("mean_generated_tokens", "generated tokens"),
    )),
    ("Retry behaviour", (
        Metric("retry_rate", "P(>= 2 searches)", _n),
        Metric("persistence", "P(searched again | first search missed gold)", _cond("persistence"), UP),
        Metric("recovery", "P(correct | first search missed gold)", _cond("recovery"), UP),
        Metric("wasted_retries", "P(searched again after gold seen | gold seen)", _cond("wasted_retries"), DOWN),
        Metric("premature_answer", "P(answered before gold seen | answered)", _cond("premature_answer"), DOWN),
    )),
    ("Search efficiency", (
        Metric("redundant_search_rate", "searches adding no passage not already shown / searches",
               _cond("redundant_search_rate"), DOWN),
        Metric("gold_gain_per_search", "searches first surfacing a gold passage / searches",
               _cond("gold_gain_per_search"), UP),
        Metric("over_search", "P(searched | closed-book answer right)", _cond("over_search"), DOWN),
        Metric("under_search", "P(answered without search | closed-book answer wrong)", _cond("under_search"), DOWN),
    )),
    ("LLM judge (--llm-judge)", (
        Metric("llm_accuracy", "P(the LLM judge says correct); an unparsed reply counts as No", _n),
        Metric("judge_agreement", "P(LLM verdict = rule verdict | parsed)", _parsed),
        Metric("judge_kappa", "Cohen's kappa with the rule judge (0: chance agreement)"),
        Metric("llm_unparsed", "replies with neither Yes nor No", None, DOWN),
    )),
    ("Samples per question (K)", (
        Metric("avg_at_k", "mean success rate over the K samples", None, UP),
        Metric("pass_at_k", "P(some sample right), unbiased estimator", None, UP),
        Metric("maj_at_k", "P(the majority answer is right)", None, UP),
    )),
)


#: Rows that measure the searches an episode made: a policy that never searched has nothing to compare there
#: (a closed-book policy's search_strategy reward is not a better search strategy).
ABOUT_SEARCHES = frozenset({"first_search_gold", "any_search_gold", "query_diversity", "retry_rate", "persistence",
                            "recovery", "wasted_retries", "reward_search_strategy", "reward_search_diversity",
                            "reward_em_chunk", "reward_retry", "reward_retry_after_miss"})


@dataclass
class Column:
    """One column of the comparison table: a policy at a noise level (of one run), with the reward weights its
    ``reward_total`` was summed with (None: unknown)."""

    run: str | None
    policy: str
    noise: str
    metrics: dict[str, Any]
    weights: tuple[tuple[str, float], ...] | None = None

    @property
    def header(self) -> str:
        return " / ".join(x for x in (self.run, self.policy, self.noise) if x)

    @property
    def searched(self) -> bool:
        """False only when the column is known to have made no search at all."""
        v = self.metrics.get("searches_per_episode")
        return not (isinstance(v, (int, float)) and v == 0)


def columns_from_record(record: Any, run: str | None = None) -> list[Column]:
    """The columns of one run record's metrics (:attr:`harness.core.record.RunRecord.results`); none without one."""
    if record is None:
        return []
    weights = tuple(sorted((str(k), float(v)) for k, v in (record.reward_weights or {}).items())) or None
    return [Column(run, str(policy), noise_label(noise), metrics, weights)
            for policy, by_noise in record.results.items() for noise, metrics in by_noise.items()]


def comparable_groups(metric: Metric, cols: Sequence[Column]) -> list[Any]:
    """For each column, the group of columns its ``metric`` cell may be compared with (None: with none).

    Cells compare only at the same noise level; ``reward_total`` only under the same reward weights; a row
    about searches (:data:`ABOUT_SEARCHES`) only among columns that searched.

    >>> a = Column(None, "a", "noise 0", {"searches_per_episode": 0.0}, (("retry", 1.0),))
    >>> b = Column(None, "b", "noise 0", {"searches_per_episode": 1.0}, (("retry", 0.0),))
    >>> c = Column(None, "a", "noise 0.5", {"searches_per_episode": 1.0}, (("retry", 1.0),))
    >>> comparable_groups(Metric("accuracy", ""), [a, b, c])
    ['noise 0', 'noise 0', 'noise 0.5']
    >>> comparable_groups(Metric("reward_search_strategy", ""), [a, b, c])
    [None, 'noise 0', 'noise 0.5']
    >>> [g[1] for g in comparable_groups(Metric("reward_total", ""), [a, b, c])]
    [(('retry', 1.0),), (('retry', 0.0),), (('retry', 1.0),)]
    """
    out: list[Any] = []
    for c in cols:
        if metric.key in ABOUT_SEARCHES and not c.searched:
            out.append(None)
        elif metric.key == "reward_total":
            out.append((c.noise, c.weights))
        else:
            out.append(c.noise)
    return out


def noise_label(key: Any) -> str:
    """'noise=0.5' -> 'noise 0.5'.

    >>> noise_label("noise=0.5"), noise_label("x")
    ('noise 0.5', 'x')
    """
    key = str(key)
    return "noise " + key.split("=", 1)[1] if key.startswith("noise=") else key


def reward_metrics(cols: Sequence[Column]) -> tuple[Metric, ...]:
    """One row per reward logged by any column (``reward_total`` last)."""
    names = sorted({k for c in cols for k in c.metrics if k.startswith("reward_") and not k.endswith("_std")})
    names = [n for n in names if n != "reward_total"] + (["reward_total"] if "reward_total" in names else [])
    return tuple(Metric(n, "weighted sum" if n == "reward_total" else "mean per episode", _n, UP) for n in names)


def cell(metric: Metric, m: dict[str, Any]) -> tuple[float | None, str]:
    """The value of ``metric`` in one column and its cell HTML (value, interval, denominator)."""
    value = m.get(metric.key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None, "—"
    parts = [esc(fmt(value))]
    stored = m.get(f"{metric.key}_ci_low"), m.get(f"{metric.key}_ci_high")
    if metric.key.startswith("reward_"):
        ci = mean_interval(value, m.get(f"{metric.key}_std"), m.get("n"))
        if ci:
            parts.append(f'<span class="ci">{fmt_interval(*ci)}</span>')
    elif all(isinstance(x, (int, float)) for x in stored) and (m.get("k") or 1) > 1:
        # a K-sample run's interval, computed over questions with their samples (cluster bootstrap; pass@k and
        # maj@k: Wilson over questions), never a Wilson over K x n episodes as if they were independent
        n = metric.denominator(m) if metric.denominator is not None else None
        parts.append(f'<span class="ci">{fmt_interval(stored[0], stored[1])}'
                     + (f" n={int(n)}" if isinstance(n, (int, float)) and n != m.get("n") else "") + "</span>")
    elif metric.denominator is not None:
        n = metric.denominator(m)
        if isinstance(n, (int, float)) and n > 0:
            ci = wilson(round(value * n), n)
            parts.append(f'<span class="ci">{fmt_interval(*ci)}'
                         + (f" n={int(n)}" if n != m.get("n") else "") + "</span>")
    return float(value), "".join(parts)


def best_cells(values: list[float | None], groups: list[Any], better: int) -> set[int]:
    """Indices of the best value in each group (ties all marked); nothing where all values agree, in a group
    of one, or for a cell whose group is None (comparable with nothing).

    >>> sorted(best_cells([0.2, 0.5, 0.1, 0.3], ["a", "a", "b", "b"], 1))
    [1, 3]
    >>> best_cells([0.5, 0.5], ["a", "a"], 1), best_cells([0.9, 0.1], ["a", None], 1)
    (set(), set())
    """
    if better == NONE:
        return set()
    out: set[int] = set()
    for g in dict.fromkeys(g for g in groups if g is not None):
        idx = [i for i, (v, gg) in enumerate(zip(values, groups)) if gg == g and v is not None]
        vals = {values[i] for i in idx}
        if len(idx) < 2 or len(vals) < 2:
            continue
        target = max(vals) if better == UP else min(vals)
        out |= {i for i in idx if values[i] == target}
    return out


def comparison_table(cols: Sequence[Column]) -> str:
    """The grouped comparison table (HTML)."""
    if not cols:
        return "<p class='muted'>No metrics in results.json.</p>"
    policies = list(dict.fromkeys((c.run, c.policy) for c in cols))
    by_policy = {p: [c for c in cols if (c.run, c.policy) == p] for p in policies}
    ordered = [c for p in policies for c in by_policy[p]]
    top = "".join(f'<th colspan="{len(by_policy[p])}">{esc(" / ".join(x for x in p if x))}</th>' for p in policies)
    second = "".join(f"<th>{esc(c.noise)}</th>" for c in ordered)
    head = (f'<thead><tr><th class="l" rowspan="2">metric</th>{top}</tr><tr>{second}</tr></thead>')
    n_row = "<tr><td class='l'><b>episodes</b></td>" + "".join(f"<td>{esc(fmt(c.metrics.get('n')))}</td>"
                                                                for c in ordered) + "</tr>"
    rows = [n_row]
    width = len(ordered) + 1
    for title, metrics in GROUPS + (("Rewards (mean per episode, weighted total)", reward_metrics(ordered)),):
        group = []
        for metric in metrics:
            cells = [cell(metric, c.metrics) for c in ordered]
            if all(v is None for v, _ in cells):
                continue
            best = best_cells([v for v, _ in cells], comparable_groups(metric, ordered), metric.better)
            arrow = {UP: " ↑", DOWN: " ↓"}.get(metric.better, "")
            tds = "".join(f'<td class="best">{h}</td>' if i in best else f"<td>{h}</td>"
                          for i, (_, h) in enumerate(cells))
            group.append(f'<tr><td class="l"><b>{esc(metric.key)}</b>{arrow}<span class="ci">{esc(metric.meaning)}'
                         f"</span></td>{tds}</tr>")
        if group:   # a group none of whose rows the runs have (samples per question of 1-sample runs) is left out
            rows += [f'<tr class="group"><th colspan="{width}">{esc(title)}</th></tr>', *group]
    return f'<table class="data cmp">{head}<tbody>{"".join(rows)}</tbody></table>'


def comparison_note(cols: Sequence[Column]) -> str:
    """The note under a comparison table; the interval width it quotes is derived from the columns' ``n``.

    >>> "With 100 questions an accuracy interval is up to ±0.10 wide" in comparison_note(
    ...     [Column(None, "p", "noise 0", {"n": 100})])
    True
    >>> "With 32–318 questions an accuracy interval is up to ±0.16–0.05 wide" in comparison_note(
    ...     [Column(None, "p", "noise 0", {"n": 318}), Column(None, "q", "noise 0", {"n": 32})])
    True
    >>> "With 32 questions" in comparison_note([Column(None, "p", "noise 0", {"n": 128, "n_questions": 32})])
    True
    """
    note = ("Brackets: 95% interval (Wilson score for proportions, with the denominator n where it is not "
            "every episode; normal from the standard deviation for reward means; with K samples per question, "
            "a cluster bootstrap over questions, and Wilson over questions for pass@k and maj@k). ↑/↓: "
            "higher/lower is better; shaded: the best policy at that noise level (ties all shaded; rows where "
            "every policy agrees, one column alone at its noise level, reward_total under different reward weights "
            "and search rows of a policy that never searched are not shaded).")
    # questions, not episodes: a K-sample run's n counts K episodes per question
    counts = [c.metrics.get("n_questions", c.metrics.get("n")) for c in cols]
    sizes = sorted({int(n) for n in counts if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 1})
    if not sizes:
        return note
    widths = [interval_half_width(n) for n in (sizes[0], sizes[-1])]
    many = len(sizes) > 1
    return (note + f" With {sizes[0]}{f'–{sizes[-1]}' if many else ''} questions an accuracy interval is up to "
            f"±{widths[0]:.2f}{f'–{widths[1]:.2f}' if many else ''} wide (at 50% accuracy): overlapping intervals "
            "are not a difference.")


def interval_half_width(n: int) -> float:
    """Half the width of the 95% Wilson interval at 50% accuracy on ``n`` questions (the widest it gets).

    >>> round(interval_half_width(32), 3), round(interval_half_width(100), 3)
    (0.164, 0.096)
    """
    lo, hi = wilson(n / 2, n)
    return (hi - lo) / 2


# ---------------------------------------------------------------- training runs


def selection(run: Any) -> tuple[str, str]:
    """The split a training run selected its step on (with the optimistic label when it is the reported one)
    and the headline: the reported split's accuracy at that step with its interval."""
    from harness.core.record import OPTIMISTIC

    peak = run.record.peak if run.record is not None else None
    if peak is None:
        return "—", "—"
    if peak.split is None:  # a record from before the selection split: it selected on the reported questions
        return f"{run.options.get('eval_split', 'test')}: {OPTIMISTIC}", fmt(peak.accuracy)
    split = f"{peak.split}" + (f": {OPTIMISTIC}" if peak.optimistic else "")
    rep = peak.reported
    if rep is None or rep.accuracy is None:
        return split, "not evaluated"
    ci = f" {fmt_interval(*rep.interval)}" if rep.interval else ""
    return split, f"{rep.split} {fmt(rep.accuracy)}{ci}"


def training_rows(runs: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """Per training run: status, the reported split at the selected step (the headline) and the split it was
    selected on, the peak of the selection split (step, accuracy, interval, eval steps tied with it when the
    analysis gives them), collapse, zero step, final, faults."""
    tied = any((r.analysis or {}).get("tied_steps") for r in runs)
    rows = []
    for run in runs:
        a = run.analysis or {}
        ci = a.get("peak_interval")
        faults = sorted({f.kind for f in run.faults})
        split, headline = selection(run)
        row = [run.label, run.status, headline, split, a.get("n_evals"), a.get("peak_step"),
               a.get("peak_raw", a.get("peak")), fmt_interval(*ci) if ci else "—"]
        if tied:
            row.append(", ".join(fmt(s) for s in a.get("tied_steps") or []) or "—")
        rows.append(row + [a.get("collapse_step"), a.get("zero_step"), a.get("final_step"), a.get("final_accuracy"),
                           ", ".join(faults) or "none", learned_cell(a.get("learning"))])
    header = ["run", "status", "reported at the selected step [95% CI]", "selected on", "evals", "peak step",
              "peak accuracy (selection split)", "peak 95% CI"]
    header += ["steps tied with the peak"] if tied else []
    header += ["collapse step", "zero step", "final step", "final accuracy (selection split)", "faults", "learned"]
    return header, rows


def learned_cell(learning: dict[str, Any] | None) -> str:
    """The training table's verdict on whether a run learned (:mod:`harness.stats.learning`).

    >>> learned_cell({"verdict": "flat", "cause": "small_update"}), learned_cell({"verdict": "learned"})
    ('no (small_update)', 'yes')
    >>> learned_cell(None), learned_cell({"verdict": "declined"})
    ('—', 'got worse')
    """
    if not learning:
        return "—"
    verdict = learning.get("verdict")
    if verdict == "flat":
        return f"no ({learning.get('cause')})"
    return {"learned": "yes", "declined": "got worse", "too_short": "too short to tell"}.get(verdict, str(verdict))


def indicator_rows(runs: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """Onset step and lead time of each leading indicator per run."""
    names = list(dict.fromkeys(n for r in runs for n in ((r.analysis or {}).get("indicators") or {})))
    rows = []
    for run in runs:
        ind = (run.analysis or {}).get("indicators") or {}
        rows.append([run.label] + [f"onset {fmt(ind[n].get('onset_step'))}, lead {fmt(ind[n].get('lead_time'))}"
                                   if n in ind else "—" for n in names])
    return ["run", *names], rows


def intervention_rows(runs: Sequence[Any]) -> list[list[Any]]:
    """Every rollback (``--on-collapse rollback``) marked in a run's curve: run, step, back to step, learning-rate
    scale after it."""
    out = []
    for run in runs:
        curve = run.curve
        if curve is None or "rollback_to" not in curve:
            continue
        for _, r in curve[curve["rollback_to"].notna()].iterrows():
            out.append([run.label, int(r["step"]), int(r["rollback_to"]),
                        fmt(r["lr_scale"]) if "lr_scale" in curve else "—"])
    return out


def fault_rows(runs: Sequence[Any]) -> list[list[Any]]:
    """Every recorded fault: run, step, kind, detail."""
    return [[run.label, f.step, f.kind, f.detail] for run in runs for f in run.faults]


def seed_rows(groups: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
    """Per group of seeds: seeds, mean peak with its Student-t interval, peak steps, collapses, finals."""
    rows = []
    for label, runs in groups:
        peaks = [r.analysis["peak_raw"] for r in runs if r.analysis and r.analysis.get("peak_raw") is not None]
        low, high = clip01(t_interval(peaks))
        collapsed = sum(1 for r in runs if r.analysis and r.analysis.get("collapse_step") is not None)
        finals = [r.analysis["final_accuracy"] for r in runs if r.analysis and r.analysis.get("final_accuracy")
                  is not None]
        rows.append([label, ", ".join(str(r.seed) for r in runs), len(runs),
                     sum(peaks) / len(peaks) if peaks else None,
                     fmt_interval(low, high) if low is not None else "—",
                     ", ".join(fmt(r.analysis.get("peak_step")) for r in runs if r.analysis),
                     f"{collapsed}/{len(runs)}", sum(finals) / len(finals) if finals else None])
    return rows


SEED_HEADER = ["arm", "seeds", "n", "mean peak accuracy", "95% t-interval", "peak steps", "collapsed",
               "mean final accuracy"]
