"""The static HTML report of a run directory: `write_report(run_dir)` writes report.html, one
self-contained page (Plotly's JavaScript inlined once, so it opens offline) with the answer,
the figures of `analyzer.report.figures` and the configs table."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

from analyzer.config.modelconfig import Candidate, knobs_of, parse_pbtxt
from analyzer.errors import UsageError
from analyzer.files import write_atomic
from analyzer.judge.choose import pipeline_models, with_budget_latency
from analyzer.judge.confirm_stats import confirm_rows, confirmation_stats
from analyzer.judge.targets import target_figures
from analyzer.load.selfcheck import FIX
from analyzer.report.answer import Answer, answer_at, capacity_text, confirmed_text, fmt_rps, tie_set_sentence
from analyzer.report.data import STEP_COLUMNS, capacity_row, step_cells, step_rows
from analyzer.report.figures import all_figures
from analyzer.report.run import RunData, latency_label, load_run, num
from analyzer.schema import csv_true, percentile_field
from analyzer.stats.measurement import level_text

_STYLE = "\n".join(
    (
        "body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }",
        ".answer { background: #f3f8ee; border-left: 6px solid #4a8f29; padding: 8px 18px; }",
        ".miss { background: #fbeeee; border-left: 6px solid #b33; padding: 12px 18px; }",
        ".warn { background: #fff6e0; border-left: 6px solid #d9a400; padding: 8px 18px; margin-top: 10px; }",
        "pre { background: #f6f6f6; padding: 10px; overflow-x: auto; }",
        "table.configs { border-collapse: collapse; font-size: 13px; }",
        "tr.neck td { background: #fff6e0; font-weight: bold; }",
        "table.configs td, table.configs th { padding: 3px 8px; border-bottom: 1px solid #ddd; "
        "text-align: right; white-space: nowrap; }",
        ".wide { overflow-x: auto; }",
        "section { margin: 18px 0; }",
    )
)


def _stopped_html(run: RunData) -> str:
    reason = (run.summary or {}).get("stopped_reason")
    return f"<p>Search stopped: {html.escape(str(reason))}.</p>" if reason else ""


def _tie_set_html(answer: Answer) -> str:
    chosen = None if answer.best is None else str(answer.best["config_id"])
    ids = ", ".join(f"<code>{html.escape(i)}</code>" for i in answer.tie_set)
    lead = f"<b>Tie set:</b> <span id='tie-set'>{ids}</span>. " if answer.tie_set else ""
    return f"<p class='ties'>{lead}{html.escape(tie_set_sentence(answer.tie_set, chosen))}</p>"


def client_bound_html(measurements: pd.DataFrame) -> str:
    """A warning naming the levels the load generator could not offer, with the fix ('' when
    it kept up everywhere)."""
    if measurements.empty or "client_bound" not in measurements:
        return ""
    bound = measurements[measurements["client_bound"].map(csv_true)]
    if bound.empty:
        return ""
    levels = ", ".join(
        f"{r['config_id']} at {level_text(r['load_mode'], r['load_level'])}"
        for _, r in bound.head(6).iterrows()
    )
    more = f" and {len(bound) - 6} more" if len(bound) > 6 else ""
    reason = str(bound.iloc[0].get("client_bound_reason") or "")
    return (
        f"<div class='warn' id='client-bound'><p><b>Client bound:</b> {len(bound)} level(s) could not be "
        f"offered by the load generator, so their figures describe the client, not the model; they never "
        f"count as capacity: {html.escape(levels)}{more}.</p><p>{html.escape(reason or FIX)}</p></div>"
    )


def _answer_html(run: RunData) -> str:
    answer = answer_at(run)
    best = answer.best
    if best is None:
        return (
            f"<div class='miss'><p>No config met the budget of {run.budget_ms:g} ms (yet).</p>"
            f"{_stopped_html(run)}</div>"
        )
    label = latency_label(run.percentile)
    level = level_text(best["load_mode"], best["capacity_level"])
    measured = (
        f"<p>The search measured {fmt_rps(float(best['capacity_rps']))} req/s at that level; the "
        f"confirmation round re-measured it.</p>"
        if answer.confirmed
        else ""
    )
    lower = (
        "<p>&ge;: the config still met the budget at the highest level that could be measured (the "
        "spec's load cap, load.max_level, or the load generator's limit), so its real capacity is at "
        "least this.</p>"
        if csv_true(best.get("capacity_lower_bound"))
        else ""
    )
    latency = num(best.get("latency_ms"))
    return (
        f"<div class='answer'><h2>Best config: {html.escape(str(best['config_id']))}</h2>"
        f"<p><b>{html.escape(capacity_text(best))}</b> with {label} <b>{latency:.2f} ms</b> "
        f"(budget {label} &le; {run.budget_ms:g} ms) at {level}.</p>{measured}{lower}"
        f"{_knobs_html(best)}"
        f"{_tie_set_html(answer)}"
        f"<p><b>Why:</b> {html.escape(answer.reason)}.</p>{_stopped_html(run)}"
        f"{steps_html(run, best)}{targets_html(run, best)}"
        f"{_pbtxt_html(run, best)}</div>"
    )


def _knobs_html(best: pd.Series) -> str:
    models = pipeline_models(best)
    if not models:
        delay = best["max_queue_delay_us"]
        return (
            f"<p>instance_group.count = {int(best['instance_count'])}, "
            f"max_batch_size = {int(best['max_batch_size'])}, "
            "dynamic_batching.max_queue_delay_microseconds = "
            f"{'-' if pd.isna(delay) else int(delay)}</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{k['instance_count']}</td><td>{k['max_batch_size']}</td>"
        f"<td>{'-' if k['max_queue_delay_us'] is None else k['max_queue_delay_us']}</td></tr>"
        for name, k in models.items()
    )
    return (
        "<table class='configs' id='best-models'><tr><th>model</th><th>instance_group.count</th>"
        f"<th>max_batch_size</th><th>max_queue_delay_us</th></tr>{rows}</table>"
    )


def targets_html(run: RunData, best: pd.Series) -> str:
    """Several models: each one's throughput and latency at the chosen level, against its own budget."""
    row = capacity_row(run.measurements, best["config_id"], best.get("capacity_level"))
    figures = target_figures(row.to_dict()) if row is not None else {}
    if not figures:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{f.get('load_level', math.nan):g}</td>"
        f"<td>{f.get('throughput_rps', math.nan):.1f}</td><td>{f.get('p99_ms', math.nan):.2f}</td>"
        f"<td>{f.get('budget_ms', math.nan):g}</td><td>{'yes' if f.get('meets') else 'no'}</td></tr>"
        for name, f in figures.items()
    )
    return (
        "<div id='targets'><h3>Each model at the chosen level</h3><table class='configs'>"
        "<tr><th>model</th><th>its level</th><th>req/s</th><th>p99 ms</th><th>its budget ms</th>"
        "<th>meets</th></tr>"
        f"{rows}</table></div>"
    )


def steps_html(run: RunData, best: pd.Series) -> str:
    """The per-step table of a pipeline's best config, naming the bottleneck step."""
    steps, neck = step_rows(run, best)
    if not steps:
        return ""
    rows = "".join(
        f"<tr{' class=neck' if s['name'] == neck else ''}><td>{html.escape(s['name'])}</td>"
        + "".join(f"<td>{c}</td>" for c in step_cells(s))
        + "</tr>"
        for s in steps
    )
    name = (
        f"<p><b>Bottleneck step: {html.escape(neck)}</b>: its instances were the busiest at the capacity "
        "level, so more instances or more batching there would raise the pipeline's capacity first.</p>"
        if neck
        else ""
    )
    head = "".join(f"<th>{h}</th>" for h, _, _ in STEP_COLUMNS)
    return (
        f"<div id='steps'><h3>Per step at the capacity level</h3>{name}"
        f"<table class='configs'><tr><th>step</th>{head}</tr>{rows}</table></div>"
    )


def _stale_warning(text: str | None, want: tuple[object, ...], model: str, config_id: str) -> str:
    """A warning when best/<model>/config.pbtxt (`text`) does not hold the knobs `want`
    (instance_count, max_batch_size, max_queue_delay_us); '' when it does or is not written."""
    if text is None:
        return ""
    try:
        have = knobs_of(parse_pbtxt(text))
    except UsageError:
        have = None
    if have is not None and (have.instance_count, have.max_batch_size, have.max_queue_delay_us) == want:
        return ""
    return (
        f"<p class='miss'>best/{html.escape(model)}/config.pbtxt does not hold the knobs of "
        f"{html.escape(config_id)} (written before this choice, or edited).</p>"
    )


def _pbtxt_html(run: RunData, best: pd.Series) -> str:
    """best/<model>/config.pbtxt, with a warning when its knobs are not the chosen config's (it
    is written by the sweep when the choice changes: a report made between the two shows it).
    A pipeline: every tuned model's."""
    config_id = str(best["config_id"])
    models = pipeline_models(best)
    if models:
        out = []
        for name, knobs in models.items():
            text = run.store.read_best_config(name)
            want = (knobs["instance_count"], knobs["max_batch_size"], knobs["max_queue_delay_us"])
            out.append(
                f"{_stale_warning(text, want, name, config_id)}<details open>"
                f"<summary>best/{html.escape(name)}/config.pbtxt</summary>"
                f"<pre>{html.escape(text or '(not written yet)')}</pre></details>"
            )
        return "".join(out)
    mine = Candidate.from_row(best)
    want = (mine.instance_count, mine.max_batch_size, mine.max_queue_delay_us)
    warning = _stale_warning(run.best_pbtxt, want, run.model, config_id)
    pbtxt = html.escape(run.best_pbtxt or "(config.pbtxt not written yet)")
    return f"{warning}<details open><summary>config.pbtxt</summary><pre>{pbtxt}</pre></details>"


def configs_table(run: RunData) -> pd.DataFrame:
    """The configs table of the report: capacities as text ("≥" for lower bounds, the confirmed
    mean and interval where re-measured), the budget percentile at the capacity level, knobs."""
    c = run.configs.copy()
    if c.empty:
        return c
    c = c.assign(_cap=pd.to_numeric(c["capacity_rps"], errors="coerce")).sort_values("_cap", ascending=False)
    col = percentile_field(run.percentile)
    c[col] = with_budget_latency(c, run.measurements, run.percentile)["latency_ms"]
    c["capacity_rps"] = [
        ("≥ " if csv_true(r.get("capacity_lower_bound")) else "") + f"{r['_cap']:.2f}"
        if math.isfinite(r["_cap"])
        else "-"
        for _, r in c.iterrows()
    ]
    stats = confirmation_stats(run.measurements).set_index("config_id")
    shown = ["config_id", "status", "capacity_rps"]
    if not stats.empty:
        answer = answer_at(run)
        tie_set = answer.tie_set
        chosen_id = None if answer.best is None else str(answer.best["config_id"])
        c["confirmed_rps"] = [confirmed_text(stats, str(i)) for i in c["config_id"]]
        c["tie_set"] = [
            ("chosen" if str(i) == chosen_id else "yes") if str(i) in tie_set else "" for i in c["config_id"]
        ]
        shown += ["confirmed_rps", "tie_set"]
    per_model = [
        k for k in c.columns if str(k).endswith((".instance_count", ".max_batch_size", ".max_queue_delay_us"))
    ]
    knobs = (
        ["instance_count", *per_model, "bottleneck_step"]
        if per_model
        else ["instance_count", "max_batch_size", "max_queue_delay_us"]
    )
    shown += ["capacity_level", col, "p99_ms", "p50_ms", *knobs, "levels_measured", "wall_s", "error"]
    return c[[k for k in dict.fromkeys(shown) if k in c]]


def render_html(run: RunData) -> str:
    """The self-contained report page (Plotly's JavaScript inlined once: opens offline)."""
    figures = all_figures(run)
    parts = []
    for i, (name, fig) in enumerate(figures.items()):
        drawn = fig.to_html(full_html=False, include_plotlyjs=(i == 0))
        parts.append(f"<section id='{name}'>{drawn}</section>")
    table = configs_table(run).to_html(
        index=False, na_rep="-", float_format=lambda v: f"{v:.2f}", classes="configs", border=0
    )
    s = run.summary or {}
    confirms = len(confirm_rows(run.measurements))
    failed = 0 if run.configs.empty else int((run.configs["status"] == "failed").sum())
    facts = (
        f"{len(run.configs)} configs ({failed} failed), "
        f"{len(run.measurements) - confirms} measurements"
        + (f" + {confirms} confirmation re-measurements" if confirms else "")
        + f", strategy {html.escape(run.strategy)}"
        + (f", {float(s['wall_s']):.0f} s" if s.get("wall_s") is not None else "")
        + ("" if s.get("finished") else " - sweep not finished")
    )
    label = latency_label(run.percentile)
    budget = (
        f"<p>Budget: {label} &le; {run.budget_ms:g} ms (claims at {run.confidence:.0%} confidence). "
        f"{facts}. Run directory: <code>{html.escape(str(run.dir))}</code></p>"
    )
    legend = (
        "<p>capacity_rps: the search's capacity under the budget (&ge;: met it at the highest level "
        "that could be measured, a lower bound)"
        + (
            "; confirmed_rps: the confirmation round's mean with its 95 % interval and the rounds that "
            "met the budget again"
            if confirms
            else ""
        )
        + ".</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tritune report: {html.escape(run.model)}</title>
<style>
{_STYLE}
</style></head><body>
<h1>tritune report: {html.escape(run.model)}</h1>
{budget}
{_answer_html(run)}
{client_bound_html(run.measurements)}
{"".join(parts)}
<h2>Configs</h2>
<div class='wide'>
{legend}
{table}
</div>
</body></html>
"""


def write_report(run_dir: str | Path) -> Path:
    """(Re)build RUN_DIR/report.html; returns its path."""
    run = load_run(run_dir)
    return write_atomic(run.store.path("report"), render_html(run))
