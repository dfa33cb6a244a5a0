"""HTML reports of evaluation and training runs (harness.report.run_report and its parts), on real run output.

Evaluation runs come from the real ``EvalRun`` on the shared data with the scripted reference policies
(what ``harness run --task apollo3`` does with no model). Training runs are written by the harness's
own writers (``TrainConfig``/``resolve`` for config.json, ``CurveWriter`` for curve.csv, the run record
``harness.core.record.RunRecord`` for results.json) with chosen curves, so peaks, collapses, faults and seeds
are known.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import ConfigError
from harness.report import figures as figs
from harness.report.episodes import KINDS, Ref, highlight_protocol, select
from harness.report.page import esc
from harness.report.page import page as html_page
from harness.report.run_report import build_report, load_runs, render_report_html, write_report
from harness.report.runs import check_report_target, load_run, seed_groups
from harness.stats.intervals import t_interval, wilson
from tests.browser import check_page_in_chromium

# Whole reports rendered from run folders on disk (figures drawn with seaborn/matplotlib, inlined as SVG), and in
# chromium.
pytestmark = pytest.mark.tier("integration")

REPO = Path(__file__).resolve().parents[1]
XSS = "<script>alert(1)</script>"
PWN = "document.body.setAttribute('data-pwned','1')"
XSS_DOM = f"<script>{PWN}</script><img src=x onerror=\"{PWN}\">"
HIDDEN = "total\x00ly \u202etxt.exe\u2066 \ud800"  # NUL, right-to-left override, isolate, lone surrogate


# ---------------------------------------------------------------- real evaluation run


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory, data) -> Path:
    """``harness run --task apollo3`` with no model: reference policies at noise 0 and drop_gold 0.5."""
    from harness.evaluation.run import EvalRun, RunConfig

    out = tmp_path_factory.mktemp("eval") / "apollo3-reference"
    run = EvalRun(RunConfig(task="apollo3", output_dir=str(out), report=False))
    assert [m for _, m in run.policies] == ["closed-book", "one-search", "oracle-retry"]  # no micro on apollo3
    assert run.noise_levels == [0.0, 0.5] and run.noises[1].modes == ("drop_gold",)
    run.run()
    return out


@pytest.fixture(scope="module")
def eval_page(eval_dir: Path) -> str:
    return render_report_html([eval_dir], title="harness run: apollo3")


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.integration
def test_comparison_table_policies_by_noise_with_groups_intervals_and_best(eval_page: str, eval_dir: Path):
    res = json.loads((eval_dir / "results.json").read_text())
    table = eval_page[eval_page.index('<table class="data cmp">'):]
    table = table[:table.index("</table>")]
    head = table[:table.index("</thead>")]
    assert re.findall(r'<th colspan="2">([^<]*)</th>', head) == ["closed-book", "one-search", "oracle-retry"]
    assert head.count("<th>noise 0</th>") == 3 and head.count("<th>noise 0.5</th>") == 3
    for group in ("Outcome", "Search behaviour", "Retry behaviour", "Rewards"):
        assert f'<tr class="group"><th colspan="7">{group}' in table
    acc = re.search(r"<b>accuracy</b>.*?</tr>", table).group(0)
    cells = re.findall(r"<td( class=\"best\")?>([0-9.]+)<span class=\"ci\">\[([0-9.]+), ([0-9.]+)\]", acc)
    assert len(cells) == 6
    m = res["results"]["oracle-retry"]["noise=0.5"]
    k = round(m["accuracy"] * m["n"])
    best, value, lo, hi = cells[5]  # oracle-retry at noise 0.5: the best policy under drop_gold 0.5
    assert best and float(value) == pytest.approx(m["accuracy"], abs=5e-4)
    assert (float(lo), float(hi)) == pytest.approx(wilson(k, m["n"]), abs=5e-4)
    assert not cells[1][0] and not cells[3][0]  # closed-book and one-search at 0.5 are not marked
    persistence = re.search(r"<b>persistence</b>.*?</tr>", table).group(0)
    assert f"n={m['n_persistence']}" in persistence  # conditional rates give their denominator


def figure_of(page: str, label: str) -> str:
    """The inline ``<svg>`` whose accessible name starts with ``label``."""
    start = page.index(f'aria-label="{label}')
    return page[page.rindex("<svg", 0, start):page.index("</svg>", start)]


@pytest.mark.integration
def test_eval_report_figures_are_inline_svg_with_hover_text(eval_page: str, eval_dir: Path):
    res = json.loads((eval_dir / "results.json").read_text())
    assert "<img" not in eval_page and eval_page.count('<svg class="chart"') == 3  # accuracy, retry panels, searches
    m = res["results"]["one-search"]["noise=0.5"]
    k = round(m["accuracy"] * m["n"])
    accuracy = figure_of(eval_page, "Accuracy per policy")
    assert f"<title>one-search, noise 0.5: accuracy {m['accuracy']:.3f} ({k}/{m['n']}), 95% CI [" in accuracy
    assert len(re.findall(r"<title>[^<]*: accuracy ", accuracy)) == 6  # one per policy and noise level
    retry = figure_of(eval_page, "Retry behaviour")
    for panel in ("persistence", "recovery", "wasted retries", "premature answer"):
        assert f">{panel}</text>" in retry  # panel titles stay text (svg.fonttype none)
    o = res["results"]["oracle-retry"]["noise=0.5"]
    k = round(o["persistence"] * o["n_persistence"])
    assert f"<title>oracle-retry, noise 0.5: persistence {o['persistence']:.3f} ({k}/{o['n_persistence']})" in retry
    hist = res["results"]["oracle-retry"]["noise=0.5"]["searches_hist"]
    n = max(int(x) for x in hist)
    count = hist[str(n)]
    assert f"oracle-retry / noise 0.5: {count} episode(s) with {n} searches" in eval_page
    assert "Training" not in eval_page and "Peak and collapse" not in eval_page and "peak step" not in eval_page


@pytest.mark.integration
def test_model_and_task_shown_readably(eval_page: str):
    assert "closed-book, one-search, oracle-retry (scripted)" in eval_page and "apollo3 v1" in eval_page
    shown = eval_page.split('id="details"')[0]  # the raw configuration is kept, as JSON, under Details
    assert "[{" not in shown and "{&#x27;" not in eval_page and "&#x27;backend" not in eval_page


@pytest.mark.integration
def test_episode_browser_covers_every_policy_and_noise_level(eval_page: str, eval_dir: Path):
    total = len(rows_of(eval_dir / "samples.jsonl"))
    assert total == 3 * 2 * 32
    section = eval_page[eval_page.index('id="episodes"'):]
    assert f"{total} of {total} episodes are in this page" in section
    for label in ("closed-book", "one-search", "oracle-retry", "noise 0", "noise 0.5"):
        assert f">{label} <small>" in section
    for _, label, _ in KINDS:
        assert f">{label} <small>" in section
    assert section.count('<details class="ep ') == total


@pytest.mark.integration
def test_episode_sampling_is_fair_and_says_how_many_are_shown(eval_dir: Path):
    page = render_report_html([eval_dir], max_episodes=24)
    section = page[page.index('id="episodes"'):]
    assert "24 of 192 episodes are in this page: up to 4 per policy × noise (6 cells)" in section
    eps = re.findall(r'<details class="ep ([^"]*)"', section)
    assert len(eps) == 24
    for g, n in ((0, 3), (1, 2)):  # policy (3 values) and noise (2 values): equal shares
        shares = [sum(f"d{g}-{i}" in c.split() for c in eps) for i in range(n)]
        assert len(set(shares)) == 1, shares
    recovered = sum("k-recovered" in c.split() for c in eps)
    assert recovered >= 2  # a kind present in the run is represented, not left to chance
    # 11, not 13: one-search's q0024 was right at both noise levels without searching again (not a recovery)
    assert re.search(r">recovered after a failed first search <small>\d+/11</small>", section)


@pytest.mark.integration
def test_policies_compared_on_the_same_questions(eval_page: str, eval_dir: Path):
    rows = [r for r in rows_of(eval_dir / "samples.jsonl") if r["noise_level"] == 0.5]
    one = {r["qid"]: r["correct"] for r in rows if r["policy"] == "one-search"}
    oracle = {r["qid"]: r["correct"] for r in rows if r["policy"] == "oracle-retry"}
    only_oracle = sum(oracle[q] and not one[q] for q in one)
    only_one = sum(one[q] and not oracle[q] for q in one)
    section = eval_page[eval_page.index("Policies on the same questions"):]
    row = re.search(r"<td class=\"l\">noise 0.5</td><td class=\"l\">one-search vs oracle-retry</td>(.*?)</tr>",
                    section).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert [int(c) for c in cells[:5]] == [32, sum(one[q] and oracle[q] for q in one), only_one, only_oracle,
                                          sum(not one[q] and not oracle[q] for q in one)]


@pytest.mark.integration
def test_hostile_model_text_is_escaped_visible_and_capped(eval_dir: Path, tmp_path: Path):
    run = tmp_path / "hostile"
    shutil.copytree(eval_dir, run)
    rows = rows_of(run / "samples.jsonl")
    big, worst = "A" * 100_000, ("\x00\u202e<answer>&" * 2_000)  # plain text, and text that escaping inflates
    for i, row in enumerate(rows):
        filler = worst if i % 2 else big
        row["messages"][-1]["content"] = f"<think>{XSS}</think>{XSS_DOM} {HIDDEN} " + filler
        row["messages"] += [{"role": "assistant", "content": filler}] * 5
        row["answer"], row["question"], row["gold_answer"] = f"{XSS} {HIDDEN} {filler}", filler, filler
        row["judge"], row["error"] = {"rule": "llm", "reply": filler}, filler
        row["qid"] = row["qid"] + ("" if i else big)
    (run / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = render_report_html([run])
    assert len(text.encode()) < 5_000_000  # the run holds ~130 M characters of model text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script" not in text.lower()
    assert "<img src=x" not in text and "&lt;img src=x onerror=" in text
    for raw, shown in (("\x00", "\\u0000"), ("\u202e", "\\u202e"), ("\u2066", "\\u2066"), ("\ud800", "\\ud800")):
        assert raw not in text and shown in text
    assert "more characters]" in text and "left out to keep the report small" in text
    write_report([run], output=tmp_path / "hostile.html")  # a lone surrogate must not break the UTF-8 write


@pytest.mark.integration
def test_cli_report_refuses_a_folder_without_runs_and_lists_what_is_below(eval_dir: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    (runs / "sweeps").mkdir(parents=True)
    shutil.copytree(eval_dir, runs / "a-run")
    cmd = [sys.executable, "-m", "harness", "report"]
    for target, expected in ((runs, f"{runs} is not a run directory; found below it: {runs / 'a-run'} (run)"),
                             (runs / "sweeps", "holds no run"),
                             (runs / "a-run" / "results.json", "is a file")):
        proc = subprocess.run([*cmd, str(target)], check=False, capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "reports").exists()  # nothing written
    proc = subprocess.run([*cmd, str(runs / "a-run"), "-o", str(tmp_path / "ok.html")], check=False,
                          capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and (tmp_path / "ok.html").is_file(), proc.stderr


@pytest.mark.integration
def test_terminal_summary_fits_80_columns_and_ends_with_the_report(eval_dir: Path):
    from harness.core.record import read_record
    from harness.report.summary import print_results

    res = read_record(eval_dir)
    out = io.StringIO()
    print_results(res, run_dir=eval_dir, report=eval_dir / "report.html", file=out, width=80)
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    names = {line.split()[0] for line in lines if line.strip()}
    for metric in ("searches_per_episode", "first_search_gold", "premature_answer", "wasted_retries",
                   "unsupported_wrong", "reward_search_diversity"):
        assert metric in names, metric  # full names, never cut with an ellipsis
    assert "…" not in out.getvalue()
    assert lines[-1] == f"report: {eval_dir / 'report.html'}"
    assert sum(line.startswith("noise ") for line in lines) == 2  # one table per noise level


@pytest.mark.browser
@pytest.mark.integration
def test_eval_report_renders_in_headless_chromium(eval_dir: Path, tmp_path: Path):
    report = write_report([eval_dir], output=tmp_path / "report.html")
    dom = check_page_in_chromium(report, tmp_path, height=4000)
    assert "Comparison" in dom and "oracle-retry" in dom and 'type="radio"' in dom


# ---------------------------------------------------------------- training runs (the harness's own writers)


def train_run(root: Path, name: str, acc: list[float], *, preset: str = "rezero", seed: int = 0,
              faults: tuple = (), reward_weights: str | None = None, every: int = 10) -> Path:
    """A training run directory: config.json from TrainConfig/resolve, curve.csv from CurveWriter
    (held-out accuracy with its Wilson interval on 32 questions, training statistics between evals),
    results.json with the keys harness train writes."""
    from harness.core.record import Fault, Final, ModelRef, Peak, RunRecord, TaskRef, write_record
    from harness.core.results import write_json
    from harness.train.config import TrainConfig, resolve
    from harness.train.curve import CurveWriter

    cfg = TrainConfig(task="apollo3", preset=preset, seed=seed, model="micro", reward_weights=reward_weights,
                      max_steps=every * (len(acc) - 1), eval_every=every)
    resolved = resolve(cfg)
    out = root / name
    out.mkdir(parents=True)
    write_json(out / "config.json", resolved.to_dict(cfg))
    curve = CurveWriter(out / "curve.csv")
    for i, a in enumerate(acc):
        step = i * every
        lo, hi = wilson(round(a * 32), 32)
        curve.upsert(step, {"accuracy": a, "accuracy_ci_low": lo, "accuracy_ci_high": hi, "n": 32,
                            "persistence": 0.5 + 0.01 * i, "retry_rate": 0.2})
        if i:
            for s in range(step - every + 1, step + 1):
                curve.upsert(s, {"kl": 0.001 * s, "entropy": 1.0 - 0.01 * s, "reward_correctness_mean": 4 * a,
                                 "reward_correctness_std": 0.5, "completion_length": 30})
    peak = curve.peak()
    write_record(out, RunRecord(
        kind="train", task=TaskRef(name="apollo3", version=1), model=[ModelRef(backend="hf", model="micro")],
        micro_scale=True, results={"micro": {"noise=0": {"n": 32, "accuracy": acc[-1]}}}, config=resolved.to_dict(cfg),
        seed=seed, status="complete", peak=Peak(**peak), final=Final(step=every * (len(acc) - 1), accuracy=acc[-1]),
        faults=[Fault(**f) for f in faults]))
    return out


RISE_FALL = [0.25, 0.5, 0.75, 0.875, 0.5, 0.125, 0.0, 0.0]


@pytest.mark.integration
def test_two_runs_labelled_by_difference_with_faults_marked_and_listed(tmp_path: Path):
    fault = {"step": 45, "kind": "kl_explosion", "detail": "kl = 12.5 > 10.0"}
    a = train_run(tmp_path, "train-a", RISE_FALL)
    b = train_run(tmp_path, "train-b", [0.25, 0.375, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], preset="baseline",
                  faults=[fault, {"step": 60, "kind": "zero_reward_variance", "detail": "no variance for 10 steps"}])
    text = render_report_html([a, b])
    assert "they differ in: preset." in text  # weights follow from the preset and are not repeated
    assert "Run report: preset rezero vs preset baseline" in text
    faults = text[text.index("<h3>Faults</h3>"):]
    assert "kl_explosion" in faults and "zero_reward_variance" in faults and "kl = 12.5 &gt; 10.0" in faults
    chart = figure_of(text, "Held-out accuracy by step")
    assert "<title>preset baseline: kl_explosion at step 45: kl = 12.5 &gt; 10.0</title>" in chart
    for label in ("preset rezero", "preset baseline"):
        assert len(re.findall(f"<title>{label}: step \\d+, accuracy ", chart)) == 8  # one per eval point
    assert "<title>preset rezero: step 30, accuracy 0.875 (n=32)</title>" in chart
    assert "<title>preset rezero: peak 0.875 at step 30</title>" in chart
    assert "<title>preset rezero: collapse at step 50" in chart  # 0.125 < 0.4375 at 50 and stays below
    ax = figs.accuracy_by_step(load_runs([a, b])).ax
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(t == int(t) for t in ticks)  # integer steps only
    assert "Last evaluation" in text


@pytest.mark.integration
def test_explicit_reward_weights_and_identical_curves(tmp_path: Path):
    a = train_run(tmp_path, "x", RISE_FALL, seed=0)
    b = train_run(tmp_path, "y", RISE_FALL, seed=0, reward_weights="retry=0")
    text = render_report_html([a, b])
    assert "retry weight 0" in text and "retry weight 1" in text
    assert "have identical accuracy curves (drawn slightly offset)" in text
    legend = figs.accuracy_by_step(load_runs([a, b])).ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["retry weight 1", "retry weight 0", "peak (selection split)", "collapse (dashed vertical)"]
    assert all(f">{label}</text>" in figure_of(text, "Held-out accuracy by step") for label in labels)
    markers = [h.get_marker() for h in legend.legend_handles[:2]]
    colours = [h.get_color() for h in legend.legend_handles[:2]]
    assert markers[0] != markers[1] and colours[0] != colours[1]  # different marker shapes, not only colours


@pytest.mark.integration
def test_three_seed_aggregation_and_pairs(tmp_path: Path):
    arms = {"rezero": [0.875, 0.75, 0.8125], "baseline": [0.625, 0.6875, 0.5625]}
    runs = [train_run(tmp_path, f"{p}-s{s}", [0.25, peak, peak - 0.125], preset=p, seed=s)
            for p, peaks in arms.items() for s, peak in enumerate(peaks)]
    text = render_report_html(runs)
    seeds = text[text.index("<h3>Seeds</h3>"):]
    low, high = t_interval(arms["rezero"])
    row = re.search(r"<td class=\"l\">preset rezero</td><td>0, 1, 2</td><td>3</td><td>([0-9.]+)</td>"
                    r"<td>\[([0-9.]+), ([0-9.]+)\]</td>", seeds)
    assert row and float(row.group(1)) == pytest.approx(sum(arms["rezero"]) / 3, abs=5e-4)
    assert (float(row.group(2)), float(row.group(3))) == pytest.approx((low, high), abs=5e-4)
    diffs = [a - b for a, b in zip(arms["rezero"], arms["baseline"])]
    assert f"{sum(diffs) / 3:+.3f}" in seeds and "significant" in seeds
    seeds_fig = figure_of(text, "Accuracy by step across seeds")
    assert ">preset rezero (mean of 3 seeds)</text>" in seeds_fig
    mean = sum(a for a in arms["rezero"]) / 3
    low, high = t_interval(arms["rezero"])
    assert (f"<title>preset rezero, step 10: mean {mean:.3f} over 3 seeds (0.875, 0.750, 0.812), "
            f"95% t [{low:.3f}, {high:.3f}]</title>") in seeds_fig
    # the band seaborn draws is the same Student-t interval, cut to [0, 1]
    from matplotlib.collections import PolyCollection

    groups = seed_groups(load_runs(runs))
    bands = [c for c in figs.seed_figure(groups).ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # one band per arm, in the arms' order
    band = bands[[label for label, _ in groups].index("preset rezero")].get_paths()[0].vertices
    at10 = sorted({round(y, 9) for x, y in band if abs(x - 10) < 1e-9})
    assert at10 == pytest.approx([low, min(high, 1.0)])


@pytest.mark.integration
def test_eval_samples_at_peak_and_last_step(tmp_path: Path, eval_dir: Path):
    run = train_run(tmp_path, "t", RISE_FALL)
    rows = rows_of(eval_dir / "samples.jsonl")[:20]
    (run / "eval_samples").mkdir()
    for step in (0, 30, 70):
        (run / "eval_samples" / f"step_{step:05d}.jsonl").write_text(
            "\n".join(json.dumps({**r, "step": step}) for r in rows) + "\n")
    loaded = load_run(run)
    assert [(f.label, f.step) for f in loaded.samples] == [("step 30 (peak)", 30), ("step 70 (last)", 70)]
    text = render_report_html([run])
    assert "40 of 40 episodes are in this page" in text and ">step 30 (peak) <small>20/20</small>" in text


def with_eval_samples(run: Path, rows: list[dict], steps: tuple[int, ...], correct: list[bool]) -> Path:
    """Real eval rows as the run's eval_samples at ``steps``, with ``correct`` set per question."""
    (run / "eval_samples").mkdir()
    for step in steps:
        (run / "eval_samples" / f"step_{step:05d}.jsonl").write_text(
            "\n".join(json.dumps({**r, "correct": c, "judge": {**r["judge"], "correct": c}, "step": step})
                      for r, c in zip(rows, correct)) + "\n")
    return run


@pytest.mark.integration
def test_runs_compared_on_the_same_questions_at_peak_and_last_eval(tmp_path: Path, eval_dir: Path):
    rows = [r for r in rows_of(eval_dir / "samples.jsonl") if r["policy"] == "oracle-retry"][:24]
    a = with_eval_samples(train_run(tmp_path, "a", RISE_FALL), rows, (30, 70), [True] * 20 + [False] * 4)
    b = with_eval_samples(train_run(tmp_path, "b", RISE_FALL, preset="baseline"), rows, (30, 70),
                          [True] * 8 + [False] * 16)
    text = render_report_html([a, b])
    section = text[text.index("Runs on the same questions"):]
    row = re.search(r'<td class="l">peak eval</td><td class="l">preset rezero vs preset baseline</td>(.*?)</tr>',
                    section).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert [int(c) for c in cells[:5]] == [24, 8, 12, 0, 4]
    assert cells[-1] == "significant" and float(cells[-2]) == pytest.approx(2 / 2**12, rel=0.01)
    assert '<td class="l">last eval</td>' in section


@pytest.mark.integration
def test_seed_arms_compared_per_question(tmp_path: Path, eval_dir: Path):
    rows = [r for r in rows_of(eval_dir / "samples.jsonl") if r["policy"] == "oracle-retry"][:24]
    runs = [with_eval_samples(train_run(tmp_path, f"{p}-{s}", RISE_FALL, preset=p, seed=s), rows, (30,),
                              [True] * (20 if p == "rezero" else 8) + [False] * (4 if p == "rezero" else 16))
            for p in ("rezero", "baseline") for s in (0, 1)]
    text = render_report_html(runs)
    assert "Per question, at the peak evals:</b> preset rezero vs preset baseline: peak 0.83 vs 0.33" in text
    assert "(paired, 2 seeds x 24 questions): significant" in text


@pytest.mark.integration
def test_bad_inputs_are_listed_not_fatal(tmp_path: Path):
    with pytest.raises(ValueError):
        render_report_html([])
    with pytest.raises(FileNotFoundError):
        render_report_html([tmp_path / "missing"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text("{oops")
    (broken / "curve.csv").write_text("step,acc\n0,1\n")
    (broken / "samples.jsonl").write_text('{"qid": "q1"}\n{not json\n[1]\n')
    text = render_report_html([broken])
    assert "results.json is not readable JSON" in text and "missing required column" in text
    assert "skipped 2 malformed line(s)" in text


@pytest.mark.integration
def test_write_report_default_path_and_atomicity(tmp_path: Path, monkeypatch):
    run = train_run(tmp_path, "eval", RISE_FALL)
    monkeypatch.chdir(tmp_path)
    out = write_report([run], title="Eval <b>only</b>")
    assert out.parent == Path("reports") and re.fullmatch(r"eval-\d{8}-\d{6}\.html", out.name)
    assert "<title>Eval &lt;b&gt;only&lt;/b&gt;</title>" in out.read_text(encoding="utf-8")
    explicit = write_report([run], output=tmp_path / "nested" / "r.html")
    assert sorted(p.name for p in explicit.parent.iterdir()) == ["r.html"]  # no temp file left


@pytest.mark.integration
def test_figures_written_as_pdf_svg_and_png_files(tmp_path: Path):
    fault = {"step": 45, "kind": "kl_explosion", "detail": "kl = 12.5 > 10.0"}
    runs = [str(train_run(tmp_path, f"s{s}", RISE_FALL, seed=s, faults=[fault] if s else ())) for s in (0, 1)]
    cmd = [sys.executable, "-m", "harness", "report", *runs, "-o", str(tmp_path / "r.html")]
    names = {"accuracy_by_step", "seeds", "rewards", "retry_by_step", "indicators"}
    for extra, fmt, head in ((["--figures", str(tmp_path / "pdf"), "--format", "pdf"], "pdf", b"%PDF"),
                             (["--svg", str(tmp_path / "svg")], "svg", b"<?xml"),
                             (["--figures", str(tmp_path / "png"), "--format", "png"], "png", b"\x89PNG")):
        proc = subprocess.run([*cmd, *extra], check=False, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        files = sorted((tmp_path / fmt).iterdir())
        assert {f.stem for f in files} == names and {f.suffix for f in files} == {f".{fmt}"}
        assert all(f.read_bytes().startswith(head) for f in files)
    svg = (tmp_path / "svg" / "accuracy_by_step.svg").read_text()
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg and "<title>seed 1: kl_explosion at step 45" in svg
    assert "<a " not in svg and "#tip-" not in svg  # hover texts became titles
    pdf = (tmp_path / "pdf" / "accuracy_by_step.pdf").read_bytes()
    assert b"/URI" not in pdf and b"tip-" not in pdf  # no link annotations left from the hover texts
    bad = subprocess.run([*cmd, "--figures", str(tmp_path / "x"), "--format", "jpg"], check=False,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--format must be svg, pdf or png" in bad.stderr


@pytest.mark.integration
def test_same_runs_render_the_same_bytes_and_figures_keep_the_csp(tmp_path: Path):
    runs = [train_run(tmp_path, f"s{s}", RISE_FALL, seed=s) for s in (0, 1)]
    (first, plots), (second, again) = build_report(runs), build_report(runs)
    generated = re.compile(r"Generated \S+ from")  # the page's only clock reading
    assert generated.sub("", first) == generated.sub("", second)
    for a, b in zip(plots, again):
        assert a.render("svg") == b.render("svg") and a.render("pdf") == b.render("pdf")
    ids = re.findall(r' id="([^"]+)"', first)
    assert len(ids) == len(set(ids))  # several inline figures, no shared id
    refs = set(re.findall(r'(?:url\(#|xlink:href="#)([^)"]+)', first))
    assert refs and refs <= set(ids)  # every clip path and marker a figure uses is on the page
    assert "<script" not in first and "<?xml" not in first and "<!DOCTYPE svg" not in first
    charts = re.findall(r'<svg class="chart".*?</svg>', first, re.S)
    assert len(charts) == len(plots) == 5 and "Content-Security-Policy" in first
    for chart in charts:  # nothing a figure holds loads or links anything (the config under Details may name URLs)
        assert not re.search(r"https?://|<a |<style|<image", chart) and not re.search(r"(src|href)=\"(?!#)", chart)


@pytest.mark.unit
def test_help_and_report_modules_import_no_plotting_library():
    code = ("import sys; from typer.testing import CliRunner; from harness.cli.app import app; "
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
            "import harness.report.run_report, harness.report.study_report, harness.report.cells; "
            "print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- pure pieces


@pytest.mark.unit
def test_invisible_characters_become_visible_escapes():
    shown = esc(HIDDEN)
    for raw, code in (("\x00", "U+0000"), ("\u202e", "U+202E"), ("\u2066", "U+2066"), ("\ud800", "U+D800")):
        assert raw not in shown and f'title="{code}"' in shown
    doc = html_page(f"title {HIDDEN}", [shown])
    doc.encode("utf-8")  # no lone surrogate left
    assert "<title>title total\\u0000ly \\u202etxt.exe\\u2066 \\ud800</title>" in doc


@pytest.mark.unit
def test_highlight_escapes_before_tagging():
    assert highlight_protocol("<answer><b>x</b></answer>") == (
        '<span class="tag-answer"><span class="tag">&lt;answer&gt;</span>&lt;b&gt;x&lt;/b&gt;'
        '<span class="tag">&lt;/answer&gt;</span></span>')
    assert highlight_protocol("<search>unclosed") == '<span class="tag tag-search">&lt;search&gt;</span>unclosed'


@pytest.mark.unit
def test_hostile_field_types_are_rendered_as_text():
    from harness.report.episodes import episode_html

    text = episode_html({"qid": ["<blink>"], "correct": [1], "messages": "<script>x</script>", "rewards": [1],
                         "answer": {"a": "<iframe>"}, "question": 3})
    assert "<script" not in text and "<blink>" not in text and "<iframe>" not in text
    assert "&lt;blink&gt;" in text and "&lt;iframe&gt;" in text and "&lt;script&gt;x&lt;/script&gt;" in text
    role = episode_html({"messages": [{"role": '"><script>', "content": None}]})
    assert 'class="msg msg-other"' in role and "&quot;&gt;&lt;script&gt;" in role


@pytest.mark.unit
def test_select_gives_every_cell_the_same_quota_and_every_kind_a_turn():
    refs = [Ref(Path("f"), i, i, {"policy": p, "noise": n}, f"q{i % 50}",
                frozenset({"recovered", "correct"} if (p == "b" and i % 50 == 7) else {"wrong"}))
            for i, (p, n) in enumerate((p, n) for p in "abc" for n in ("0", "0.5") for _ in range(50))]
    chosen = select(refs, budget=30)
    assert len(chosen) == 30
    cells = [(r.dims["policy"], r.dims["noise"]) for r in chosen]
    assert {cells.count(c) for c in set(cells)} == {5}
    assert sum("recovered" in r.kinds for r in chosen) == 2  # both cells of policy b show their one recovery


@pytest.mark.unit
def test_report_target_checks(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no run"):
        check_report_target(tmp_path / "empty")
    for i in range(25):
        (tmp_path / "many" / f"r{i:02d}").mkdir(parents=True)
        (tmp_path / "many" / f"r{i:02d}" / "curve.csv").write_text("step,accuracy\n0,0.5\n")
    with pytest.raises(ConfigError, match=r"r00 \(run\); .*r19 \(run\); \.\.\.$"):
        check_report_target(tmp_path / "many")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.db").write_bytes(b"")
    assert check_report_target(tmp_path / "study") == "study"
    assert check_report_target(tmp_path / "many" / "r00") == "run"
    with pytest.raises(ConfigError, match="give its folder"):
        check_report_target(tmp_path / "many" / "r00" / "curve.csv")
