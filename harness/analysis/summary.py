"""Print a results.json as a metrics table (policies x noise levels in columns)."""

from __future__ import annotations

from harness.scoring.metrics import HEADLINE


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def results_table(res: dict) -> tuple[list[str], list[list[str]]]:
    cols, data = [], []
    for policy, by_noise in res.get("results", {}).items():
        for nk, m in by_noise.items():
            cols.append(f"{policy} {nk}")
            data.append(m)
    rows = [["n", *[_fmt(m.get("n")) for m in data]]]
    for name in HEADLINE:
        cells = []
        for m in data:
            cell = _fmt(m.get(name))
            if name == "accuracy" and m.get("accuracy_ci_low") is not None:
                cell += f" [{m['accuracy_ci_low']:.2f},{m['accuracy_ci_high']:.2f}]"
            cells.append(cell)
        rows.append([name, *cells])
    rewards = sorted({k for m in data for k in m if k.startswith("reward_") and not k.endswith("_std")})
    rows += [[name, *[_fmt(m.get(name)) for m in data]] for name in rewards]
    return ["metric", *cols], rows


def print_results(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = results_table(res)
    title = f"{res.get('task', {}).get('name')} | status {res.get('status')} | seed {res.get('seed')}"
    if res.get("reward_semantics"):
        stop = (res.get("protocol") or {}).get("stop_after_action")
        title += f" | rewards: {res['reward_semantics']} semantics, stop_after_action={str(stop).lower()}"
    if res.get("micro_scale"):
        title += " | MICRO-SCALE MODEL (not comparable to the paper's 3B model)"
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        table.add_row(*r)
    Console().print(table)
