"""The ``harness`` command line. Heavy imports (torch, TRL, vLLM, FAISS) happen inside commands."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from harness.cli.options import bounded, config_command, given, int_list, seed_option, text
from harness.core.errors import HarnessError, PrintableFilter, printable
from harness.evaluation.config import RunConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evaluation and ablation harness for retry-aware retrieval RL (ReZero-style search agents).")
data_app = typer.Typer(no_args_is_help=True, help="Verify/fetch task data, build indexes, print statistics.")
bench_app = typer.Typer(no_args_is_help=True, help="Measured performance figures (ratios and per-unit costs).")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")

TaskOpt = text("apollo3", "--task", "-t", help="Task name (a folder under tasks/) or path to a task.yaml.")
DataDirOpt = typer.Option(None, "--data-dir",
                          help="Folder with the task's data files (else $HARNESS_DATA_DIR, else the cache).")


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {printable(msg)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _progress_factory():
    from tqdm.auto import tqdm

    bars = []

    def make(desc: str, total: int):
        bar = tqdm(total=total, desc=desc, unit="ep", leave=True, file=sys.stderr)
        bars.append(bar)

        def tick(n: int) -> None:
            bar.update(n)
            if bar.n >= bar.total:
                bar.close()

        return tick

    return make


# ----------------------------------------------------------------------------- run
def _run(cfg: RunConfig) -> None:
    from harness.core.config import other_task_policies
    from harness.evaluation.run import EvalRun
    from harness.models.resolve import is_micro_scale

    r = EvalRun(cfg, progress=_progress_factory())
    if cfg.model is None:
        modes = "+".join(r.noises[0].modes) if r.noises else ""
        typer.echo("No --model given: evaluating the scripted reference policies ("
                   + ", ".join(p for b, p in r.policies if b == "scripted") + ")"
                   + "".join(f" and the MICRO-SCALE policy '{m}' (trained on this task; not comparable to the "
                             "paper's 3B model)" for b, m in r.policies if b != "scripted" and is_micro_scale(m))
                   + "".join(f" and {m}" for b, m in r.policies if b != "scripted" and not is_micro_scale(m))
                   + f" at {modes} noise " + " and ".join(f"{lv:g}" for lv in r.noise_levels) + ".", err=True)
        for other, names in other_task_policies(r.task).items():
            typer.echo(f"The {', '.join(names)} policy is trained for {other}: "
                       f"harness run --task {other} --model {names[0]}", err=True)
    from harness.cli.reports import ReportFailed, report_after_failure, report_run

    interrupted = False
    try:
        res = r.run()
    except KeyboardInterrupt:   # Ctrl-C, or SIGTERM (main() turns it into one)
        interrupted = True
    except BaseException:  # a failed run gets its page too; a run that wrote nothing gets none
        if cfg.report:
            report_after_failure(r.out, r.title)
        raise
    html, failed = None, None
    if cfg.report:   # a finished or interrupted run gets its page
        try:
            html = report_run(r.out, r.title)
        except ReportFailed as e:
            failed = e
    if interrupted:
        from harness.cli.resume import interrupted_message

        samples = r.out / "samples.jsonl"
        saved = sum(1 for line in samples.open(encoding="utf-8") if line.strip()) if samples.is_file() else 0
        if html is not None:
            typer.echo(f"report: {html}", err=True)
        elif failed is not None:
            typer.secho(f"error: {failed}", fg=typer.colors.RED, err=True)
        typer.secho(interrupted_message(saved, "episode", sys.argv[1:], r.out), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130)
    from harness.report.summary import print_results

    print_results(res, run_dir=r.out, report=html)
    if failed is not None:
        _fail(str(failed), code=1)


#: ``harness run``: options generated from RunConfig (harness.cli.options), plus --config FILE.
run = app.command("run")(config_command(
    RunConfig, _run, section="run", name="run",
    doc="Evaluate a model (or the reference policies) on a task with retry-aware metrics."))


# ----------------------------------------------------------------------------- data
@data_app.command("prepare")
def data_prepare(task: str = TaskOpt, data_dir: Optional[Path] = DataDirOpt,
                 dense: bool = typer.Option(True, "--dense/--no-dense",
                                            help="Also build the dense index cache.")) -> None:
    """Verify (or download) the data and build the retrieval indexes."""
    from harness.core.config import load_task
    from harness.data.loading import load_task_data
    from harness.data.retrieval import build_retriever

    t = load_task(task)
    d = load_task_data(t, data_dir)
    typer.echo(f"data verified in {d.root}: {len(d.corpus)} chunks, {len(d.questions)} questions")
    build_retriever(t.retrieval, d.corpus, "bm25")
    typer.echo("bm25 index built")
    if dense:
        r = build_retriever(t.retrieval, d.corpus, "dense", show_progress=True)
        typer.echo(f"dense index {'loaded from' if r.cache_hit else 'built and cached in'} {r.index_dir}")


@data_app.command("stats")
def data_stats(task: str = TaskOpt, data_dir: Optional[Path] = DataDirOpt,
               retrievers: str = text("bm25,dense", "--retrievers"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Corpus and split sizes, and recall@1/3/5 of the gold chunk per retriever (question as query)."""
    from harness.core.config import load_task
    from harness.data.loading import load_task_data
    from harness.data.retrieval import build_retriever, recall_at

    names = [r.strip() for r in retrievers.split(",") if r.strip()]
    if not names:
        _fail("--retrievers: give at least one retriever (bm25, dense)")
    t = load_task(task)
    d = load_task_data(t, data_dir)
    out = {"chunks": len(d.corpus), "questions": len(d.questions),
           "splits": {s: len(d.split(s)) for s in ("train", "dev", "test", "all")},
           "paraphrased_chunks": len(d.corpus.paraphrases or {}),
           "gold_chunks_per_question": {str(n): sum(len(q.gold_chunk_ids) == n for q in d.questions)
                                        for n in sorted({len(q.gold_chunk_ids) for q in d.questions})},
           "recall": {}}
    qs = [q.question for q in d.questions]
    gold = [q.gold_chunk_ids for q in d.questions]
    for name in names:
        r = build_retriever(t.retrieval, d.corpus, name)
        out["recall"][name] = {f"@{k}": round(v, 3) for k, v in recall_at(r, qs, gold).items()}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"task {t.name} v{t.version}: {out['chunks']} chunks, {out['questions']} questions "
               f"(train {out['splits']['train']}, dev {out['splits']['dev']}, test {out['splits']['test']}); "
               f"{out['paraphrased_chunks']} chunks have paraphrases")
    typer.echo(f"gold chunks per question: {out['gold_chunks_per_question']}")
    typer.echo(f"recall of the gold chunk, all {len(qs)} questions, question text as query:")
    for name, rec in out["recall"].items():
        typer.echo(f"  {name:6s} " + "  ".join(f"{k}={v:.3f}" for k, v in rec.items()))


# ----------------------------------------------------------------------------- search
@app.command()
def search(
    query: str = typer.Argument(..., callback=given, help="The search query."),
    task: str = TaskOpt,
    retriever: str = text("bm25", "--retriever", help="bm25 (lexical) or dense (MiniLM embeddings, "
                          "FAISS; the index is built and cached on first use)."),
    k: Optional[int] = bounded(None, "-k", min=1, max=50, help="Results shown (default: the task's retrieval.k)."),
    noise: float = bounded(0.0, "--noise", min=0.0, max=1.0, help="Noise level p in [0, 1]."),
    noise_mode: str = text("drop_gold", "--noise-mode", help="drop_gold, paraphrase, random, shuffle "
                           "(comma-separated)."),
    question_id: Optional[str] = text(None, "--question-id", help="Treat the query as this question's search "
                                      "(e.g. q0019): its gold chunks are marked [GOLD] in the results and "
                                      "drop_gold knows what to drop."),
    call_index: int = bounded(0, "--call-index", min=0,
                              help="Which search of the episode (noise is re-drawn per call)."),
    seed: int = seed_option(help="Seed of the noise draws (a run's --seed)."),
    data_dir: Optional[Path] = DataDirOpt,
) -> None:
    """Search the task corpus and print the results as the agent would see them."""
    from harness.core.config import load_task, make_noise
    from harness.data.loading import load_task_data
    from harness.data.retrieval import build_retriever
    from harness.data.search import SearchTool

    t = load_task(task)
    nz = make_noise(noise, noise_mode)
    d = load_task_data(t, data_dir)
    gold: tuple[str, ...] = ()
    if question_id:
        match = [q for q in d.questions if q.qid == question_id]
        if not match:
            _fail(f"no question {question_id!r}; ids look like q0000..q{len(d.questions) - 1:04d}")
        gold = match[0].gold_chunk_ids
    r = build_retriever(t.retrieval, d.corpus, retriever)
    tool = SearchTool(r, d.corpus, k=k or t.retrieval.k, noise=nz, seed=seed, result_template=t.prompt.result,
                      result_separator=t.prompt.result_separator, no_results=t.prompt.no_results)
    res = tool.search(query, qid=question_id or "", gold_chunk_ids=gold, call_index=call_index)
    for hit in res.results:
        tag = (" [GOLD]" if hit.chunk_id in gold else "") + (f" [{hit.noise}]" if hit.noise else "")
        typer.secho(f"#{hit.rank + 1} chunk {hit.chunk_id} score {hit.score:.3f}{tag}", bold=True,
                    fg=typer.colors.GREEN if hit.chunk_id in gold else None)
        typer.echo(hit.text + "\n")
    if not res.results:
        typer.echo("No results found.")
    if res.noise_events:
        typer.echo(f"noise events: {', '.join(res.noise_events)}")
    if question_id:
        shown = sum(hit.chunk_id in gold for hit in res.results)
        typer.echo(f"gold chunks of {question_id}: {', '.join(gold) or 'none'}; {shown} of them shown"
                   + ("" if shown else " (the gold passage is not in these results)"))
    if noise > 0 and "drop_gold" in nz.modes and not question_id:
        typer.echo("note: drop_gold needs --question-id to know which chunks are gold; nothing was dropped.", err=True)


# ----------------------------------------------------------------------------- validate / analyze / report
@app.command()
def validate(files: list[Path] = typer.Argument(..., help="task.yaml or ablation YAML files (or the names of shipped "
                                                "tasks and ablations: apollo3, micro_retry)."),
             data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with a task's data files "
                                                     "(else the task's data.dir, $HARNESS_DATA_DIR, the "
                                                     "cache).")) -> None:
    """Validate config files against the schemas they will bind to; a task's data too, when it is here."""
    from harness.cli.validate import validate_file

    bad = 0
    for f in files:
        try:
            kind = validate_file(f, data_dir)
            typer.echo(f"ok      {f} ({kind})")
        except HarnessError as e:
            bad += 1
            typer.secho(str(e), fg=typer.colors.RED)
    raise typer.Exit(1 if bad else 0)


@app.command()
def analyze(run_dirs: list[Path] = typer.Argument(..., help="Run directories or curve.csv files; with --vs, the runs "
                                                "of arm A (one per seed)."),
            delta: float = bounded(0.5, "--delta", min=0.0, max=1.0,
                                   help="Collapse when accuracy < (1-delta) x peak (level)."),
            m: int = bounded(2, "--m", min=1, help="... confirmed over m consecutive evals (or to the end)."),
            smooth: Optional[int] = bounded(None, "--smooth", min=1, help="Rolling-mean window (exact method only)."),
            n: Optional[int] = bounded(None, "--n", min=1,
                                       help="Questions per eval, for curves without an 'n' column."),
            mode: str = text("offline", "--mode", help="offline (whole curve) or online (where a run "
                                     "watching the curve would stop)."),
            method: str = text("auto", "--method", help="auto, binomial (noise-aware) or exact (each eval "
                                       "taken as exact)."),
            vs: list[Path] = typer.Option([], "--vs", help="Runs of arm B (repeat, one per seed, same order as "
                                          "arm A): compare paired on shared questions at each run's peak."),
            names: str = text("A,B", "--names", help="Labels of the two arms: 'retry,baseline'."),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Peak (with interval and tied steps), collapse onset and leading indicators; or a paired comparison."""
    from harness.core.rundir import read_curve
    from harness.stats.curves import analyze as analyze_curve

    if vs:
        from harness.core.rundir import outcomes
        from harness.stats.paired import compare_outcomes

        labels = [x.strip() for x in names.split(",")]
        if len(labels) != 2:
            _fail(f"--names expects two labels separated by a comma, got {names!r}")
        cmp = compare_outcomes([outcomes(d).outcomes for d in run_dirs], [outcomes(d).outcomes for d in vs], *labels)
        typer.echo(json.dumps(cmp.to_dict(), indent=2) if as_json else cmp.sentence())
        return
    results = {}
    for run_dir in run_dirs:
        try:
            results[str(run_dir)] = analyze_curve(read_curve(run_dir), delta=delta, m=m, smooth=smooth, n=n,
                                                  mode=mode, method=method)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
    if as_json:
        typer.echo(json.dumps(results[str(run_dirs[0])] if len(run_dirs) == 1 else results, indent=2, default=str))
        return
    for run_dir, res in results.items():
        if len(results) > 1:
            typer.secho(str(run_dir), bold=True)
        _print_analysis(res)


def _print_analysis(res: dict) -> None:
    line = f"peak accuracy {res['peak']:.4f} at step {res['peak_step']}"
    if res["method"] == "binomial":
        lo, hi = res["peak_interval"]
        line += (f" [95% CI {lo:.3f}, {hi:.3f}]; tied with the peak: steps {', '.join(map(str, res['tied_steps']))} "
                 f"(pooled level {res['peak_level']:.4f}); n per eval {res['eval_n']['min']}"
                 + (f"-{res['eval_n']['max']}" if res["eval_n"]["max"] != res["eval_n"]["min"] else "")
                 + f" ({res['n_source']})")
    else:
        line += " (each eval taken as exact: eval size unknown; pass --n to use the noise-aware detector)"
    typer.echo(line)
    typer.echo(f"collapse onset ({res['mode']}): "
               f"{res['collapse_step'] if res['collapse_step'] is not None else 'no collapse'}"
               f"; an online run would have stopped at: "
               f"{res['collapse_alarm_step'] if res['collapse_alarm_step'] is not None else 'never'}")
    typer.echo(f"persistent zero from: {res['zero_step'] if res['zero_step'] is not None else 'never'}")
    learning = res.get("learning")
    if learning:
        typer.secho(learning["message"], fg=None if learning["verdict"] == "learned" else typer.colors.YELLOW)
    for name, ind in (res.get("indicators") or {}).items():
        typer.echo(f"  {name:24s} onset {ind.get('onset_step')}  lead {ind.get('lead_time')}"
                   + ("  (demoted: not shown to beat chance)" if ind.get("demoted") else ""))


@app.command()
def report(run_dirs: list[Path] = typer.Argument(..., help="Run directories to compare side by side, or one study "
                                               "directory of `harness sweep` (holding study.db)."),
           output: Optional[Path] = typer.Option(None, "--output", "-o", help="HTML file (default: reports/...)."),
           title: Optional[str] = text(None, "--title"),
           storage: Optional[str] = text(None, "--storage", help="Study storage URL (e.g. postgresql://...)."),
           study_name: Optional[str] = text(None, "--study-name"),
           as_json: bool = typer.Option(False, "--json", help="For a study: print its summary tables as JSON."),
           figures_dir: Optional[Path] = typer.Option(None, "--figures", help="Also write each figure of the report "
                                                      "as a standalone file into this folder."),
           fmt: str = text("svg", "--format", help="File format of --figures: svg, pdf or png."),
           svg_dir: Optional[Path] = typer.Option(None, "--svg", help="Same as --figures DIR --format svg."),
           force: bool = typer.Option(False, "--force", help="Replace an existing --output file that is not a "
                                      "harness report (a run's or study's own files are never replaced).")) -> None:
    """Write one self-contained HTML report for runs, or for an Optuna ablation study."""
    from harness.core.outputs import check_output
    from harness.core.rundir import REPORT
    from harness.report.page import is_report
    from harness.report.runs import check_report_target

    if svg_dir is not None:
        if figures_dir is not None and figures_dir != svg_dir:
            _fail("--svg DIR is --figures DIR --format svg: give one of them")
        figures_dir, fmt = svg_dir, "svg"
    if fmt not in ("svg", "pdf", "png"):
        _fail(f"--format must be svg, pdf or png, not {fmt!r}")
    kinds = [check_report_target(d) for d in run_dirs] if not storage else ["study"]
    if "study" in kinds and len(run_dirs) > 1:
        _fail("a study directory is reported on its own: harness report STUDY_DIR")
    if output is not None:   # checked before any work: never over a run's files or a stranger's file
        check_output(output, "harness report", own=(REPORT,), force=force, is_ours=is_report)
    if figures_dir is not None:
        check_output(figures_dir, "harness report --figures", folder=True)
    if storage or kinds == ["study"]:
        from harness.report.study_report import study_summary, write_study_report

        url = storage or f"sqlite:///{(run_dirs[0] / 'study.db').resolve()}"
        if as_json:
            typer.echo(json.dumps(study_summary(url, study_name), indent=2, default=str))
            return
        from harness.report.study import collect

        data = collect(url, study_name)
        _print_protocol(data.protocol, "trials")
        path = write_study_report(run_dirs[0], storage=url, study_name=study_name, output=output,
                                  figures_dir=figures_dir, fmt=fmt, data=data)
    else:
        from harness.report.run_report import load_runs, run_protocol_differences, write_report

        if len(run_dirs) > 1:
            _print_protocol(run_protocol_differences(load_runs(list(run_dirs))), "runs")
        path = write_report(list(run_dirs), output=output, title=title, figures_dir=figures_dir, fmt=fmt)
    if figures_dir is not None:
        typer.echo(f"figures written: {figures_dir} ({fmt})")
    typer.echo(f"report written: {path}")


def _print_protocol(lines: list[str], what: str) -> None:
    """Before anything is compared: each protocol field that differs between the runs (or trials)."""
    if not lines:
        return
    typer.secho(f"these {what} differ in their protocol; comparisons between them cross it:", fg=typer.colors.YELLOW)
    for line in lines:
        typer.echo(f"  protocol differs: {line}")


@app.command()
def cells(study_dir: Path = typer.Argument(..., help="A `harness sweep` output directory (its trials/ folder)."),
          arm: str = text(..., "--arm", help="The trial option whose values are compared paired, e.g. preset."),
          by: str = typer.Option("", "--by", help="Comma-separated trial options that define the cells the arms are "
                                 "compared within, e.g. model (the exploration regime)."),
          seed_key: str = text("seed", "--seed-key", help="The trial option that indexes seeds."),
          output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Default: STUDY_DIR/cells."),
          title: Optional[str] = text(None, "--title"),
          fmt: str = text("svg", "--format", help="File format of the per-level figures: svg, pdf or png.")
          ) -> None:
    """A factorial study cell by cell: means over seeds with 95% t-intervals, arms compared paired within cells."""
    from harness.core.outputs import check_output
    from harness.report.cells import markdown, write_cells

    factors = [f.strip() for f in by.split(",") if f.strip()]
    if fmt not in ("svg", "pdf", "png"):
        _fail(f"--format must be svg, pdf or png, not {fmt!r}")
    if output_dir is not None:
        check_output(output_dir, "harness cells", folder=True)
    res = write_cells(study_dir, factors, arm, output_dir, seed_key=seed_key, title=title, fmt=fmt)
    typer.echo(markdown(res["cells"], res["comparisons"]))
    typer.echo(f"written: {output_dir or study_dir / 'cells'}/cells.json, cells.md, cells.html")


# ----------------------------------------------------------------------------- sweep
def _overrides(pairs: list[str]) -> dict:
    out = {}
    for item in pairs:
        if "=" not in item:
            _fail(f"--set expects KEY=VALUE (a harness train option), got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip().lstrip("-").replace("-", "_")] = v
    return out


@app.command()
def sweep(
    ablation: str = typer.Argument(..., callback=given,
                                   help="An ablation YAML file, or the name of a shipped one (micro_retry)."),
    n_trials: Optional[int] = bounded(None, "--n-trials", min=1,
                                      help="Finished trials wanted (grid: the grid size)."),
    storage: Optional[str] = text(None, "--storage", help="SQLAlchemy URL; default sqlite in the study dir. "
                                          "Use postgresql://... to share one study between machines."),
    study_name: Optional[str] = text(None, "--study-name", help="Default: the ablation's name."),
    workers: int = bounded(1, "--workers", min=1, max=256, help="Worker processes on this machine."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o",
                                              help="Study directory (default runs/sweeps/NAME)."),
    model: Optional[str] = text(None, "--model", help="Override the base config's model."),
    max_steps: Optional[int] = bounded(None, "--max-steps", min=1),
    eval_every: Optional[int] = bounded(None, "--eval-every", min=1),
    eval_limit: Optional[int] = bounded(None, "--eval-limit", min=1),
    set_: list[str] = typer.Option([], "--set", help="Any other harness train option: --set num_generations=4 "
                                   "(checked with the ablation before any trial runs)."),
    trial_timeout: Optional[float] = bounded(None, "--trial-timeout", min=1.0,
                                             help="Seconds before a trial is failed."),
    report: bool = typer.Option(True, "--report/--no-report"),
    gpus_per_trial: Optional[int] = bounded(None, "--gpus-per-trial", min=1, help="Give each worker its own G "
                                                 "GPUs (CUDA_VISIBLE_DEVICES): never two trials on one GPU."),
    print_slurm: bool = typer.Option(False, "--print-slurm", help="Print a Slurm job array (one task per --workers, "
                                     "each a worker of the study in --storage, PostgreSQL) instead of running; "
                                     "the study is created first. Submit it: ... --print-slurm > job.sh; "
                                     "sbatch job.sh"),
    slurm_cpus: int = bounded(2, "--slurm-cpus", min=1, help="With --print-slurm: CPUs per array task."),
    slurm_time: Optional[str] = text(None, "--slurm-time", help="With --print-slurm: time limit per task."),
    slurm_partition: Optional[str] = text(None, "--slurm-partition", help="With --print-slurm: partition."),
) -> None:
    """Run (or resume) an Optuna ablation study whose trials are short harness train runs."""
    from harness.cli.reports import report_study
    from harness.sweep.runner import SweepIncomplete, run_sweep

    ov = {k: v for k, v in (("model", model), ("max_steps", max_steps), ("eval_every", eval_every),
                            ("eval_limit", eval_limit)) if v is not None}
    ov.update(_overrides(set_))
    if print_slurm:
        from harness.sweep.slurm import slurm_job

        typer.echo(slurm_job(str(ablation), storage=storage, study_name=study_name,
                             study_dir=str(output_dir) if output_dir else None, workers=workers, n_trials=n_trials,
                             overrides=ov, trial_timeout=trial_timeout, gpus_per_trial=gpus_per_trial,
                             cpus=slurm_cpus, time_limit=slurm_time, partition=slurm_partition), nl=False)
        return
    try:
        summary = run_sweep(str(ablation), n_trials=n_trials, storage=storage, study_name=study_name, workers=workers,
                            output_dir=str(output_dir) if output_dir else None, overrides=ov,
                            trial_timeout=trial_timeout, gpus_per_trial=gpus_per_trial)
    except SweepIncomplete as e:  # the study ran but did not finish (nothing completed): not bad input
        why = report_study(e.summary, storage) if report else None
        typer.echo(json.dumps(e.summary, indent=2, default=str))
        if why:
            typer.secho(f"error: {why}", fg=typer.colors.RED, err=True)
        _fail(str(e), code=1)
    why = report_study(summary, storage) if report else None
    typer.echo(json.dumps(summary, indent=2, default=str))
    if why:
        _fail(why, code=1)


# ----------------------------------------------------------------------------- bench
@bench_app.command("retrieval")
def bench_retrieval(task: str = TaskOpt, data_dir: Optional[Path] = DataDirOpt,
                    repeats: int = bounded(20, "--repeats", min=1)) -> None:
    """BM25 and dense throughput (batched and one at a time), index build and cold/warm start."""
    from harness.bench.benches import bench_retrieval as b

    typer.echo(json.dumps(b(task, data_dir, repeats=repeats), indent=2))


@bench_app.command("env")
def bench_env(task: str = TaskOpt, data_dir: Optional[Path] = DataDirOpt,
              model: Optional[str] = typer.Option("tiny", "--model",
                                                  help="hf model for the overhead share ('' to skip)."),
              limit: int = bounded(32, "--limit", min=1)) -> None:
    """Environment overhead: episodes/s with scripted policies, share of wall time outside generate, RSS."""
    from harness.bench.benches import bench_env as b

    typer.echo(json.dumps(b(task, data_dir, model=model or None, limit=limit), indent=2))


@bench_app.command("train")
def bench_train(task: str = TaskOpt, data_dir: Optional[Path] = DataDirOpt,
                model: str = text("tiny", "--model"), steps: int = bounded(6, "--steps", min=1),
                threads: int = bounded(1, "--threads", min=1),
                num_generations: int = bounded(4, "--num-generations", "-G", min=2),
                prompts_per_step: int = bounded(2, "--prompts-per-step", min=1),
                task_limits: bool = typer.Option(False, "--task-limits", help="Use the task's max turns and tokens "
                                                 "per turn (default: 3 turns of 24 tokens)."),
                lora_rank: int = bounded(0, "--lora-rank", min=0, max=1024, help="LoRA rank (0: full fine-tuning)."),
                beta: Optional[float] = bounded(None, "--beta", min=0, max=10, help="KL coefficient (default: the "
                                                "run's)."),
                bare_trl: bool = typer.Option(False, "--bare-trl/--no-bare-trl", help="Also time a plain TRL "
                                              "GRPOTrainer step on the same model, prompts and settings (TRL's "
                                              "single-turn generation, no environment).")) -> None:
    """GRPO step cost on a small model: per-step time, peak RSS, generation/update/environment split."""
    from harness.bench.train import bench_train as b

    kw = {"task": task, "data_dir": data_dir, "model": model, "steps": steps, "threads": threads,
          "num_generations": num_generations, "prompts_per_step": prompts_per_step,
          "warm_start": 40 if model == "tiny" else 0,  # tiny needs the protocol
          "lora_rank": lora_rank, "beta": beta, "bare_trl": bare_trl}
    if task_limits:
        kw.update(max_turns=None, max_new_tokens=None)
    typer.echo(json.dumps(b(**kw), indent=2, default=str))


@bench_app.command("generation")
def bench_generation(task: str = TaskOpt, data_dir: Optional[Path] = DataDirOpt,
                     model: str = text("smollm2-135m", "--model", help="An HF model (name, path or hub id)."),
                     limit: int = bounded(16, "--limit", min=1, help="Test questions played."),
                     batch_size: int = bounded(16, "--batch-size", min=1),
                     max_new_tokens: int = bounded(100, "--max-new-tokens", min=1),
                     max_turns: int = bounded(3, "--max-turns", min=1),
                     threads: Optional[int] = bounded(None, "--threads", min=1),
                     repeats: int = bounded(1, "--repeats", min=1, help="Best of this many timings.")) -> None:
    """Tokens per second of a harness rollout against a bare model.generate on the same batches (the ratio)."""
    from harness.bench.generation import bench_generation as b

    typer.echo(json.dumps(b(task, data_dir, model=model, limit=limit, batch_size=batch_size,
                            max_new_tokens=max_new_tokens, max_turns=max_turns, threads=threads, repeats=repeats),
                          indent=2, default=str))


@bench_app.command("selection")
def bench_selection(run_dirs: list[Path] = typer.Argument(..., help="harness train run directories trained with "
                                                         "--eval-reported every (both splits at every eval).")) -> None:
    """The winner's curse measured: the reported split at the step the selection split picks vs its best eval."""
    from harness.bench.selection import bench_selection as b

    typer.echo(json.dumps(b(run_dirs), indent=2, default=str))


@bench_app.command("onset")
def bench_onset(study_dir: Path = typer.Argument(..., help="A harness sweep output directory (trials/*)."),
                arm: str = text("reward.retry", "--arm", help="The trial option whose two values are the arms."),
                treated: float = bounded(1.0, "--treated", min=-1e6, max=1e6, help="Its value in the treated arm."),
                control: float = bounded(0.0, "--control", min=-1e6, max=1e6, help="Its value in the control arm."),
                censor_at: float = bounded(50.0, "--censor-at", min=0, max=1e7, help="The step a run without "
                                           "onset is censored at (its last step)."),
                seed_key: str = text("seed", "--seed-key", help="The trial option that indexes seeds.")) -> None:
    """Retry onset as time-to-event, paired by seed (Study A, docs/findings.md section 9): log-rank with an exact
    permutation p-value, Kaplan-Meier medians, and the AUC differences."""
    from harness.bench.onset import onset_study

    typer.echo(json.dumps(onset_study(study_dir, arm=arm, treated=treated, control=control, censor_at=censor_at,
                                      seed_key=seed_key), indent=2, default=str))


@bench_app.command("remedies")
def bench_remedies(study_dirs: list[Path] = typer.Argument(..., help="harness sweep output directories (trials/*): "
                                                             "several are pooled (a study run in parts)."),
                   arm: str = text("arm", "--arm", help="The trial option that names the remedy arm."),
                   control: str = text("none", "--control", help="The control arm's name."),
                   censor_at: float = bounded(50.0, "--censor-at", min=0, max=1e7, help="The step a run without a "
                                              "collapse is censored at (its last step)."),
                   seed_key: str = text("seed", "--seed-key", help="The trial option that indexes seeds."),
                   planned: Optional[int] = bounded(None, "--planned-seeds", min=1, max=10_000, help="Runs planned "
                                                    "per arm: an arm with fewer finished gets the verdict interim."),
                   planned_arms: Optional[int] = bounded(None, "--planned-arms", min=2, max=10_000, help="Arms "
                                                         "planned, the control included (Holm counts the missing)."),
                   as_json: bool = typer.Option(False, "--json", help="Everything, per seed.")) -> None:
    """Collapse remedies against the control arm, paired by seed (Study B, docs/findings.md section 9): collapse
    counts with Fisher's exact test and Holm's correction, steps to collapse by log-rank with an exact permutation
    p-value, AUC and peak differences, the pre-registered verdict per remedy."""
    from harness.bench.remedies import format_remedies, remedy_study

    res = remedy_study(study_dirs, arm=arm, control=control, censor_at=censor_at, seed_key=seed_key, planned=planned,
                       planned_arms=planned_arms)
    typer.echo(json.dumps(res, indent=2, default=str) if as_json else format_remedies(res))


@bench_app.command("corpus")
def bench_corpus(run_dirs: list[Path] = typer.Argument(..., help="harness train run directories."),
                 output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Corpus folder (e.g. "
                                                 "tests/data/micro_corpus); manifest.json there is merged."),
                 prefix: str = typer.Option("", "--prefix", help="Prepended to each run's folder name."),
                 source: str = typer.Option("", "--source", help="How the runs were made (recorded per run).")) -> None:
    """Copy runs' curves (trimmed to the detectors' columns) into an early-warning corpus with labels."""
    from harness.bench.corpus import export_corpus
    from harness.core.outputs import check_output

    check_output(output_dir, "harness bench corpus", folder=True)
    names = [f"{prefix}{d.name}" for d in run_dirs]
    manifest = export_corpus(run_dirs, output_dir, names, source)
    runs = manifest["runs"]
    collapsed = sum(r["collapse_step"] is not None for r in runs.values())
    typer.echo(f"{output_dir}: {len(runs)} runs, {collapsed} with a sustained drop below half the peak")


@bench_app.command("protocol")
def bench_protocol(sizes: str = text("1000,2000,5000", "--sizes", help="Unclosed <think> tags per turn "
                                             "(comma-separated, each 1 .. 20000)."),
                   repeats: int = bounded(3, "--repeats", min=1, max=100)) -> None:
    """Turn parsing cost on unclosed tags: the linear parser vs the lazy regex it replaced (us per tag)."""
    from harness.bench.protocol import MAX_TAGS
    from harness.bench.protocol import bench_protocol as b

    typer.echo(json.dumps(b(int_list(sizes, "--sizes", min=1, max=MAX_TAGS), repeats=repeats), indent=2))


@bench_app.command("detect")
def bench_detect(count: int = bounded(1000, "--count", min=1, max=1_000_000,
                                     help="Curves per kind (never-collapsing, collapsing) and n."),
                 sizes: str = text("32,100", "--n", help="Eval sizes, comma-separated (each 1 .. 100000)."),
                 seed: int = seed_option(),
                 runs: list[Path] = typer.Option([], "--runs", help="Training runs (repeat) on which to score the "
                                                 "leading indicators against chance."),
                 corpus: Optional[Path] = typer.Option(None, "--corpus", help="An early-warning corpus folder "
                                                       "(`harness bench corpus`; e.g. tests/data/micro_corpus): its "
                                                       "curves, with its labelled collapses."),
                 real: list[Path] = typer.Option([], "--real", help="Folders of real curves with a manifest.json "
                                                 "(repeat; default: the checkout's tests/data/micro_corpus and "
                                                 "tests/data/real_curves)."),
                 envelope: bool = typer.Option(False, "--envelope", help="Online false alarms by dip depth x width and "
                                               "found by fall length x plateau, on the empirical generator."),
                 tradeoff: bool = typer.Option(False, "--tradeoff", help="Online rates of a grid of settings on the "
                                               "planted, empirical and real sets."),
                 prediction: bool = typer.Option(False, "--prediction", help="With --corpus: the early-warning "
                                                 "prediction test (leave-one-configuration-out AUROC against the "
                                                 "accuracy curve alone, permutation null; harness.stats.warning)."),
                 permutations: int = bounded(1000, "--permutations", min=1, help="Label permutations of --prediction."),
                 as_json: bool = typer.Option(False, "--json", help="Everything, with rates per stratum.")) -> None:
    """False-collapse and detection rates of the collapse detectors: on real curves, on the planted synthetic
    set and on the empirical generator fitted to real runs; with --runs or --corpus, the leading indicators'
    warning rates against chance."""
    from harness.bench import calibrate, detect
    from harness.bench.real import DEFAULT_SOURCES

    n_sizes = int_list(sizes, "--n", min=1, max=100_000)
    res = detect.bench_detect(count=count, sizes=n_sizes, seed=seed)
    folders = [str(f) for f in real] or [str(f) for f in DEFAULT_SOURCES if (f / "manifest.json").is_file()]
    cal = (calibrate.bench_calibration(count, n_sizes, seed, with_envelope=envelope, with_tradeoff=tradeoff,
                                       folders=folders, generators=("empirical",)) if folders else None)
    paths, labels = [str(r) for r in runs], None
    if corpus is not None:
        more, labels = detect.corpus_runs(corpus)
        paths += more
    ind = detect.bench_indicators(paths, seed=seed, labels=labels) if paths else None
    warn = None
    if prediction and corpus is not None:
        from harness.bench.corpus import warning_runs
        from harness.stats.warning import score_corpus

        warn = score_corpus(warning_runs(corpus), permutations=permutations, seed=seed)
    if as_json:
        typer.echo(json.dumps({**res, "calibration": cal, "indicators": ind, "prediction": warn}, indent=2,
                              default=str))
        return
    typer.echo(detect.format_table(res))
    typer.echo("\n" + (calibrate.format_calibration(cal) if cal else "no real curves found (give --real FOLDER)"))
    if ind is not None:
        typer.echo("\n" + detect.format_indicators(ind))
        typer.echo(detect.format_combinations(ind))
    if warn is not None:
        from harness.bench.corpus import format_warnings

        typer.echo("\n" + format_warnings(warn))


@bench_app.command("sweep")
def bench_sweep(ablation: str = typer.Argument(..., callback=given,
                                               help="Ablation file (or a shipped one's name) for the micro-sweep."),
                n_trials: int = bounded(8, "--n-trials", min=1),
                output_dir: Path = typer.Option(Path("runs/bench-sweep"), "--output-dir", "-o"),
                set_: list[str] = typer.Option([], "--set",
                                               help="harness train options, e.g. --set model=micro.")) -> None:
    """Steps run and best objective of a micro-sweep with pruning + collapse stop vs without."""
    from harness.bench.benches import bench_sweep as b
    from harness.core.outputs import check_output

    check_output(output_dir, "harness bench sweep", folder=True)
    typer.echo(json.dumps(b(str(ablation), _overrides(set_), n_trials, str(output_dir)), indent=2, default=str))


def _register_optional_commands() -> None:
    """Commands that live in their own modules (light imports only at module level)."""
    import importlib

    for module, name in (("harness.cli.train", "train"), ("harness.cli.rescore", "rescore"),
                         ("harness.cli.lmeval", "lmeval"), ("harness.cli.micro", "micro"),
                         ("harness.cli.export", "export")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        obj = getattr(mod, name)
        if isinstance(obj, typer.Typer):   # a command group, e.g. `harness micro build`
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


_register_optional_commands()


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the libraries' INFO logs (faiss, "
                                       "transformers, sentence-transformers, ...) and tracebacks of file "
                                       "errors.")) -> None:
    """Evaluation and ablation harness for retry-aware retrieval RL (ReZero-style search agents)."""
    global _VERBOSE
    _VERBOSE = verbose
    # The harness logs at INFO; libraries only at WARNING unless --verbose (faiss alone prints five INFO lines
    # about a missing AVX2 build on every import).
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("harness").setLevel(logging.INFO)
    if verbose:
        for name in ("transformers", "sentence_transformers", "datasets"):
            logging.getLogger(name).setLevel(logging.INFO)


_VERBOSE = False


_TERMINATED = False


def _terminate(signum, frame) -> None:
    """SIGTERM (``kill``, a scheduler's time limit) as Ctrl-C: the command unwinds, says where its run stands
    and how to resume it, and releases its run directory; the exit status is 143 (128 + SIGTERM)."""
    global _TERMINATED
    _TERMINATED = True
    raise KeyboardInterrupt


def misplaced_option(args: list[str]) -> str | None:
    """One line for an option the command does not have but another harness command does (``harness run
    --report-to``), instead of click's nearest spelling (``--report``, a different option); None otherwise,
    and click reports unknown options as before.

    >>> misplaced_option(["run", "--model", "oracle", "--report-to", "wandb"])
    'harness run has no option --report-to: it is an option of harness train'
    >>> misplaced_option(["run", "--model", "oracle", "--report"]) is None, misplaced_option(["run", "--nope"]) is None
    (True, True)
    """
    import typer.main

    root = typer.main.get_command(app)   # typer's own click: a group is what has .commands
    cmd, path, rest = root, ["harness"], list(args)
    while hasattr(cmd, "commands"):
        while rest and rest[0].startswith("-"):    # the root's own flags (--verbose)
            rest.pop(0)
        if not rest or rest[0] not in cmd.commands:
            return None
        path.append(rest[0])
        cmd = cmd.commands[rest.pop(0)]
    own = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    where: dict[str, list[str]] = {}

    def walk(c: Any, name: str) -> None:
        if hasattr(c, "commands"):
            for sub_name, sub in c.commands.items():
                walk(sub, f"{name} {sub_name}")
            return
        for p in c.params:
            for o in (*p.opts, *p.secondary_opts):
                where.setdefault(o, []).append(name)

    walk(root, "harness")
    for arg in rest:
        if arg == "--":
            break
        opt = arg.split("=", 1)[0]
        if opt.startswith("--") and opt not in own and opt in where:
            return f"{' '.join(path)} has no option {opt}: it is an option of {', '.join(sorted(set(where[opt])))}"
    return None


def main() -> None:
    import signal
    import threading

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:   # no log line prints a value read from a file whole
        handler.addFilter(PrintableFilter())
    logging.getLogger("harness").setLevel(logging.INFO)
    from pydantic import ValidationError

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    wrong = misplaced_option(sys.argv[1:])
    if wrong:
        typer.secho(f"error: {wrong}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    try:
        app(standalone_mode=True)
    except SystemExit as e:   # the command line turns the KeyboardInterrupt into an exit status (130)
        if _TERMINATED and e.code not in (0, None):
            sys.exit(128 + signal.SIGTERM)
        raise
    except HarnessError as e:
        typer.secho(f"error: {printable(e)}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except ValidationError as e:  # an option value out of range (e.g. --limit 0)
        msgs = "; ".join(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
                         for err in e.errors())
        typer.secho(f"error: invalid option value: {printable(msgs)}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except OSError as e:  # a file the run needs is missing, unwritable or of the wrong kind
        if _VERBOSE or e.filename is None:
            raise
        where = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
        typer.secho(f"error: {e.strerror or type(e).__name__}: {printable(where)} (rerun with --verbose for the "
                    "traceback)",
                    fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
