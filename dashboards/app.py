"""The interactive report of a run directory: `create_app(run_dir) -> dash.Dash`.

A latency-budget slider recomputes live which configs meet it and the best one (at the sweep's
own budget: the sweep's confirmed choice and its tie set, as in summary.json); filters narrow
the configs shown; clicking a point opens its config (load curve, server breakdown, config.pbtxt
with a download button); two configs can be compared side by side; a planner turns a target
load into server replicas and cost. The page re-reads the run directory when its files change,
so it follows a sweep that is still running.

The callbacks are methods of `Dashboard`, plain functions of their inputs, so tests call them
directly; `create_app` only wires them to the layout.
"""

from __future__ import annotations

import math
import urllib.parse
from pathlib import Path
from typing import Any

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from analyzer.choose import confirmation_stats, confirmed_choice, pipeline_models
from analyzer.measure import level_text
from analyzer.modelconfig import apply_candidate, read_pbtxt, to_pbtxt
from analyzer.report import (
    Answer,
    RunData,
    answer_at,
    breakdown_data,
    breakdown_figure,
    capacity_text,
    capacity_under_budget,
    confirmation_data,
    confirmation_figure,
    confirmed_text,
    cost_per_million,
    heatmap_data,
    heatmap_figure,
    is_sweep_budget,
    latency_column,
    latency_label,
    load_curves_data,
    load_curves_figure,
    load_run,
    pareto_data,
    pareto_figure,
    replicas_needed,
    resources_data,
    resources_figure,
    STEP_COLUMNS,
    search_rows,
    step_cells,
    step_rows,
    tie_set_sentence,
)
from analyzer.pipeline import JointCandidate, candidate_from_row
from analyzer.space import Candidate
from analyzer.store import RUN_FILES, RunStore

DELAY_OFF = -1  # filter value for "no dynamic batching"


def _delay_value(v: Any) -> int:
    return DELAY_OFF if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


class Dashboard:
    """The data behind the app and every callback, as plain methods."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._version: tuple[int, ...] | None = None
        self.run: RunData = load_run(self.run_dir)  # raises UsageError on a bad directory
        self._version = self.version()

    # -- data ---------------------------------------------------------------------------------
    def version(self) -> tuple[int, ...]:
        """Identity, size and modification time of the files the page shows: changes whenever a
        sweep writes. Size and inode catch what a coarse-grained mtime would miss (the tables
        only grow; summary.json is replaced by rename, so it gets a new inode)."""
        stamps: list[int] = []
        for name in ("measurements", "configs", "summary"):
            try:
                st = (self.run_dir / RUN_FILES[name]).stat()
            except FileNotFoundError:
                stamps.extend((0, 0, 0))
                continue
            # Microseconds: nanoseconds since 1970 overflow the browser's exact integers.
            stamps.extend((st.st_ino, st.st_size, st.st_mtime_ns // 1000))
        return tuple(stamps)

    def refresh(self) -> bool:
        """Re-read the run directory if it changed; True when it did."""
        current = self.version()
        if current == self._version:
            return False
        self.run = load_run(self.run_dir)
        self._version = current
        return True

    def filtered(self, counts: list[int] | None, batches: list[int] | None, delays: list[int] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Measurements and configs limited to the chosen knob values (None = all)."""
        m, c = self.run.measurements, self.run.configs
        if m.empty:
            return m, c
        keep = pd.Series(True, index=m.index)
        keep_c = pd.Series(True, index=c.index)
        if self.pipeline:
            batches = delays = None  # a pipeline's batching is per model: only instances filter
        if counts is not None:
            keep &= m["instance_count"].astype(int).isin(counts)
            keep_c &= c["instance_count"].astype(int).isin(counts)
        if batches is not None:
            keep &= m["max_batch_size"].astype(int).isin(batches)
            keep_c &= c["max_batch_size"].astype(int).isin(batches)
        if delays is not None:
            keep &= m["max_queue_delay_us"].apply(_delay_value).isin(delays)
            keep_c &= c["max_queue_delay_us"].apply(_delay_value).isin(delays)
        return m[keep], c[keep_c]

    def options(self) -> dict[str, list[int]]:
        """The knob values present in the run (for the filters)."""
        c = self.run.configs
        if c.empty:
            return {"counts": [], "batches": [], "delays": []}
        if self.pipeline:
            return {"counts": sorted(c["instance_count"].astype(int).unique().tolist()), "batches": [], "delays": []}
        return {
            "counts": sorted(c["instance_count"].astype(int).unique().tolist()),
            "batches": sorted(c["max_batch_size"].astype(int).unique().tolist()),
            "delays": sorted({_delay_value(v) for v in c["max_queue_delay_us"]}),
        }

    def budget_range(self) -> tuple[float, float]:
        """Slider bounds: from 0 to a bit above the highest budget-percentile latency measured."""
        column = latency_column(self.run.percentile)
        latency = pd.to_numeric(self.run.measurements.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
        hi = max(self.run.budget_ms * 2, float(latency.max()) * 1.1 if not latency.empty else 0.0)
        return 0.0, float(f"{hi:.3g}")

    @property
    def label(self) -> str:
        """The budget percentile's label ("p95")."""
        return latency_label(self.run.percentile)

    @property
    def pipeline(self) -> bool:
        """Whether the run tuned a pipeline (per-model knob columns)."""
        return any(str(k).endswith(".instance_count") for k in self.run.configs.columns)

    def candidate(self, config_id: str) -> Candidate | JointCandidate | None:
        """The knobs of a config of this run."""
        rows = self.run.configs[self.run.configs["config_id"] == config_id]
        return None if rows.empty else candidate_from_row(rows.iloc[-1])

    def config_pbtxts(self, config_id: str) -> dict[str, str]:
        """Deployable config.pbtxt of each tuned model of any config of the run (from the saved
        base configs); {} when the config or its base is unknown."""
        cand = self.candidate(config_id)
        if cand is None:
            return {}
        parts = cand.parts if isinstance(cand, JointCandidate) else ((self.run.model, cand),)
        out = {}
        for name, part in parts:
            base_path = (self.run_dir / RUN_FILES["base_config"] if not isinstance(cand, JointCandidate)
                         else RunStore(self.run_dir).model_base_path(name))
            if not base_path.is_file():
                return {}
            config = apply_candidate(read_pbtxt(base_path), part)
            config.name = name
            out[name] = to_pbtxt(config)
        return out

    def config_pbtxt(self, config_id: str) -> str | None:
        """Deployable config.pbtxt of a one-model config (a pipeline: its first tuned model's)."""
        texts = self.config_pbtxts(config_id)
        return next(iter(texts.values())) if texts else None

    # -- callbacks ------------------------------------------------------------------------------
    def on_tick(self, _n: int | None, version: Any) -> Any:
        """Interval tick: bump the data version when the run directory changed."""
        if self.refresh() or version is None:
            return list(self._version or ())
        return dash.no_update

    def answer(self, budget: float | None, counts: list[int] | None, batches: list[int] | None,
               delays: list[int] | None, _version: Any = None) -> tuple[Any, Any, str | None]:
        """Best config under the slider's budget: (answer panel, Pareto figure, chosen config id).
        At the sweep's budget it is the sweep's choice (the confirmation round's pick, as in
        summary.json); elsewhere the best search capacity under the slider's budget."""
        budget = float(budget if budget is not None else self.run.budget_ms)
        m, c = self.filtered(counts, batches, delays)
        answer = answer_at(self.run, budget, m, c)
        caps = capacity_under_budget(m, budget, self.run.percentile, self.run.confidence)
        meeting = int((caps["capacity_rps"] > 0).sum()) if not caps.empty else 0
        best, chosen = answer.best, None
        if best is not None:
            chosen = (str(best["config_id"]), float(best["capacity_level"]))
            delay = best["max_queue_delay_us"]
            models = pipeline_models(best)
            knobs = ("; ".join(f"{name}: instances {k['instance_count']}, max batch {k['max_batch_size']}, queue delay "
                               f"{'-' if k['max_queue_delay_us'] is None else k['max_queue_delay_us']} us"
                               for name, k in models.items()) if models else
                     f"instances {int(best['instance_count'])}, max batch {int(best['max_batch_size'])}, queue delay "
                     f"{'-' if _delay_value(delay) == DELAY_OFF else int(delay)} us")
            panel = html.Div([
                html.H3(["Best at ", html.Span(f"{budget:g}", id="budget-shown"), " ms: ",
                         html.Span(str(best["config_id"]), id="best-config-id")]),
                html.P([html.B(capacity_text(best), id="capacity-shown"),
                        f" with {self.label} {float(best['latency_ms']):.2f} ms at "
                        f"{level_text(best['load_mode'], best['capacity_level'])}; {knobs}"]),
                self._tie_set_panel(answer, filtered=len(c) < len(self.run.configs)),
                html.P(f"Why: {answer.reason}.", id="choice-reason"),
                html.P(f"{meeting} of {len(caps)} configs shown meet this budget."),
            ], className="answer")
        else:
            panel = html.Div([
                html.H3(["No config meets ", html.Span(f"{budget:g}", id="budget-shown"), " ms",
                         html.Span("", id="best-config-id")]),
                html.P(f"0 of {len(caps)} configs shown meet this budget."),
            ], className="miss")
        fig = pareto_figure(pareto_data(m, budget, chosen, self.run.percentile))
        fig.update_layout(height=520, uirevision="pareto")
        return panel, fig, chosen[0] if chosen else None

    def _tie_set_panel(self, answer: Answer, filtered: bool) -> Any:
        """The tie set at the sweep's budget (element `tie-set`); at another budget a note that
        it belongs to the sweep's budget (element `tie-set-note`)."""
        ids = ", ".join(answer.tie_set)
        if not answer.at_sweep_budget:
            if not answer.tie_set:
                return html.P("")
            return html.P(f"The tie set ({ids}) is from the confirmation round at the sweep's budget of "
                          f"{self.run.budget_ms:g} ms; at {answer.budget_ms:g} ms the choice is the best search "
                          "capacity.", id="tie-set-note")
        chosen = None if answer.best is None else str(answer.best["config_id"])
        sentence = tie_set_sentence(answer.tie_set, chosen) + (" (Among the configs the filters show.)" if filtered else "")
        if not answer.tie_set:
            return html.P(sentence)
        return html.P(["Tie set: ", html.B(ids, id="tie-set"), ". ", sentence], className="ties")

    def detail(self, click: dict[str, Any] | None, chosen: str | None, budget: float | None, _version: Any = None) -> tuple[Any, Any, Any, str, str | None]:
        """The clicked (else the chosen) config: description, load curve, breakdown, pbtxt, id."""
        config_id = None
        if click and click.get("points"):
            data = click["points"][0].get("customdata")
            if data:
                config_id = str(data[0])
        config_id = config_id or chosen
        empty = go.Figure().update_layout(height=300)
        if not config_id:
            return "Click a point to see its config.", empty, empty, "", None
        m = self.run.measurements[self.run.measurements["config_id"] == config_id]
        c = self.run.configs[self.run.configs["config_id"] == config_id]
        search = search_rows(m)
        curves = load_curves_figure(load_curves_data(m, percentile=self.run.percentile),
                                    str(search["load_mode"].iloc[0]) if not search.empty else "level",
                                    float(budget) if budget is not None else self.run.budget_ms, self.label)
        curves.update_layout(height=320, title=f"Load curve of {config_id}")
        breakdown = breakdown_figure(breakdown_data(m, c)).update_layout(height=320)
        facts = []
        if not c.empty:
            r = c.iloc[-1]
            confirmed = confirmed_text(confirmation_stats(m).set_index("config_id"), config_id)
            facts = [html.H3(config_id, id="detail-config-id"),
                     html.P(f"status {r['status']}; capacity {capacity_text(r)} "
                            f"(sweep budget {self.label} {self.run.budget_ms:g} ms); {int(r['levels_measured'])} load levels"
                            + (f"; confirmation round: {confirmed}" if confirmed else "")
                            + (f"; error: {r['error']}" if isinstance(r.get("error"), str) and r["error"] else ""))]
        texts = self.config_pbtxts(config_id)
        if self.pipeline and not c.empty:
            facts += [steps_table(self.run, c.iloc[-1])]
            # One link per tuned model: each config.pbtxt downloads on its own.
            facts += [html.P([html.A(f"download {name}/config.pbtxt", id=f"download-{name}", download=f"{name}.config.pbtxt",
                                     href="data:text/plain;charset=utf-8," + urllib.parse.quote(text), style={"marginRight": "16px"})
                              for name, text in texts.items()], id="detail-downloads")]
            pbtxt = "\n".join(f"# {name}/config.pbtxt\n{text}" for name, text in texts.items())
        else:
            pbtxt = next(iter(texts.values()), None) or "(no base config in this run directory)"
        return html.Div(facts), curves, breakdown, pbtxt or "(no base config in this run directory)", config_id

    def download(self, _clicks: int | None, config_id: str | None) -> Any:
        """The config.pbtxt of the detailed config as a file download (a pipeline: all its
        models' in one text file; each also has its own link in the detail view)."""
        texts = self.config_pbtxts(config_id) if config_id else {}
        if not texts:
            return dash.no_update
        if self.pipeline:
            return dict(content="\n".join(f"# {name}/config.pbtxt\n{text}" for name, text in texts.items()),
                        filename="pipeline-configs.txt")
        return dict(content=next(iter(texts.values())), filename="config.pbtxt")

    def compare(self, a: str | None, b: str | None, budget: float | None, _version: Any = None) -> tuple[Any, Any]:
        """Side-by-side table and overlaid load curves of two configs."""
        ids = [x for x in (a, b) if x]
        if not ids:
            return "Pick two configs to compare.", go.Figure().update_layout(height=300)
        budget = float(budget if budget is not None else self.run.budget_ms)
        caps = capacity_under_budget(self.run.measurements, budget, self.run.percentile,
                                     self.run.confidence).set_index("config_id")
        header = html.Tr([html.Th("")] + [html.Th(i) for i in ids])
        rows = []
        for label, key in (("instances", "instance_count"), ("max batch", "max_batch_size"),
                           ("queue delay us", "max_queue_delay_us"), ("status", "status")):
            cells = []
            for i in ids:
                r = self.run.configs[self.run.configs["config_id"] == i]
                value = r.iloc[-1][key] if not r.empty else "-"
                cells.append(html.Td("-" if isinstance(value, float) and math.isnan(value) else str(value)))
            rows.append(html.Tr([html.Th(label)] + cells))
        for label, key, fmt in (("capacity req/s", "capacity_rps", "{:.1f}"), ("at level", "capacity_level", "{:g}"),
                                (f"{self.label} ms", "latency_ms", "{:.2f}")):
            cells = []
            for i in ids:
                v = caps[key].get(i, math.nan) if key in caps else math.nan
                cells.append(html.Td("-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)))
            rows.append(html.Tr([html.Th(f"{label} @ {budget:g} ms")] + cells))
        stats = confirmation_stats(self.run.measurements).set_index("config_id")
        if any(i in stats.index for i in ids):
            rows.append(html.Tr([html.Th(f"confirmed req/s @ {self.run.budget_ms:g} ms")]
                                + [html.Td(confirmed_text(stats, i) or "-") for i in ids]))
        fig = load_curves_figure(load_curves_data(self.run.measurements, ids, self.run.percentile), "level", budget,
                                 self.label).update_layout(height=340)
        return html.Table([header] + rows, className="compare", id="compare-table"), fig

    def plan(self, target: float | None, price: float | None, chosen: str | None, budget: float | None, _version: Any = None) -> Any:
        """Replicas of the chosen config needed for a target load, and cost per million."""
        if not chosen:
            return "No config meets the budget, so there is nothing to plan with."
        if target is None or target <= 0:
            return "Enter a target load in requests per second."
        budget = float(budget if budget is not None else self.run.budget_ms)
        capacity, source = self.capacity_of(chosen, budget)
        if capacity <= 0:
            return f"{chosen} has no capacity under {budget:g} ms."
        replicas = replicas_needed(float(target), capacity)
        text = [html.P([f"{chosen} serves {capacity:.1f} req/s per server within {budget:g} ms ({source}): ",
                        html.B(f"{replicas} server replica{'s' if replicas != 1 else ''}", id="plan-replicas"),
                        f" for {float(target):g} req/s ({float(target) / (replicas * capacity):.0%} of their capacity)."])]
        if price is not None and price > 0:
            cost = cost_per_million(float(target), replicas, float(price))
            text.append(html.P(["Cost per million inferences: ", html.B(f"{cost:.4f}", id="plan-cost"),
                                f" (at {float(price):g} per server-hour, serving {float(target):g} req/s around the clock)."]))
        return html.Div(text)

    def capacity_of(self, config_id: str, budget: float) -> tuple[float, str]:
        """(capacity, where it comes from) of a config at a budget: at the sweep's budget the
        confirmation round's mean where the round counted it (the capacity the answer shows for
        it), else the best search level under the budget."""
        if is_sweep_budget(self.run, budget):
            # Alone, a config is the confirmed pick exactly when the round counted it.
            alone = confirmed_choice(self.run.configs[self.run.configs["config_id"] == config_id], self.run.measurements)
            if alone is not None:
                return float(alone[0]["confirmed_rps"]), "the confirmation round's mean"
        caps = capacity_under_budget(self.run.measurements, budget, self.run.percentile,
                                     self.run.confidence).set_index("config_id")
        return (float(caps.loc[config_id, "capacity_rps"]) if config_id in caps.index else 0.0), "the search's capacity"

    def confirmation(self, _version: Any = None) -> Any:
        """The confirmation figure: the round's samples, means and intervals, the tie set."""
        answer = answer_at(self.run)
        chosen = None if answer.best is None else str(answer.best["config_id"])
        fig = confirmation_figure(confirmation_data(self.run.measurements, self.run.configs, answer.tie_set, chosen))
        return fig if fig.layout.height else fig.update_layout(height=380)

    def static_figures(self, _version: Any = None) -> tuple[Any, Any]:
        """The heatmap and resource figures (redrawn when data changes)."""
        return (heatmap_figure(heatmap_data(self.run.configs)).update_layout(height=360),
                resources_figure(resources_data(self.run.measurements)).update_layout(height=360))

    def config_choices(self, _version: Any = None) -> list[dict[str, str]]:
        """Dropdown options: every config of the run."""
        return [{"label": str(i), "value": str(i)} for i in self.run.configs["config_id"].tolist()]


def steps_table(run: RunData, row: pd.Series) -> Any:
    """A pipeline config's per-step table at its capacity level, naming the bottleneck step."""
    steps, neck = step_rows(run, row)
    if not steps:
        return html.P("No per-step figures at a capacity level (the config met the budget at no level).", id="detail-steps")

    head = html.Tr([html.Th("step")] + [html.Th(h) for h, _, _ in STEP_COLUMNS])
    rows = [html.Tr([html.Td(s["name"])] + [html.Td(c) for c in step_cells(s)],
                    style={"fontWeight": "bold", "background": "#fff6e0"} if s["name"] == neck else None) for s in steps]
    return html.Div([html.P(["Bottleneck step: ", html.B(neck or "-", id="bottleneck-step"),
                             " (its instances were the busiest at the capacity level)"]),
                     html.Table([head] + rows, className="compare")], id="detail-steps")


def _layout(board: Dashboard) -> Any:
    run = board.run
    opts = board.options()
    lo, hi = board.budget_range()
    delays_label = {DELAY_OFF: "off"}
    return html.Div([
        html.H1(f"tritune: {run.model}"),
        html.P(f"Run {run.dir.name}: sweep budget {board.label} <= {run.budget_ms:g} ms, strategy {run.strategy}. "
               "Move the budget to see what would be chosen; click a point for its config."),
        dcc.Interval(id="tick", interval=2000),
        dcc.Store(id="version"),
        dcc.Store(id="chosen"),
        dcc.Store(id="detail-id"),
        html.Div([
            html.Label("Latency budget (ms)"),
            dcc.Slider(id="budget", min=lo, max=hi, value=run.budget_ms, step=0.1, allow_direct_input=True,
                       marks=None, tooltip={"placement": "bottom", "always_visible": False}, updatemode="drag"),
        ], className="control"),
        html.Div([
            html.Div([html.Label("Instances"), dcc.Checklist(id="f-count", options=opts["counts"], value=opts["counts"], inline=True)]),
            html.Div([html.Label("Max batch size"), dcc.Checklist(id="f-batch", options=opts["batches"], value=opts["batches"], inline=True)]),
            html.Div([html.Label("Queue delay (us)"), dcc.Checklist(
                id="f-delay", options=[{"label": delays_label.get(d, str(d)), "value": d} for d in opts["delays"]],
                value=opts["delays"], inline=True)]),
        ], className="filters"),
        html.Div(id="answer"),
        dcc.Graph(id="pareto"),
        html.H2("Confirmation round"),
        dcc.Graph(id="confirm-figure"),
        html.H2("Selected config"),
        html.Div(id="detail"),
        html.Div([dcc.Graph(id="detail-curves"), dcc.Graph(id="detail-breakdown")], className="pair"),
        html.Pre(id="detail-pbtxt"),
        html.Button("Download config.pbtxt", id="download-button"),
        dcc.Download(id="download"),
        html.H2("Compare two configs"),
        html.Div([dcc.Dropdown(id="compare-a", options=board.config_choices(), placeholder="first config"),
                  dcc.Dropdown(id="compare-b", options=board.config_choices(), placeholder="second config")], className="pair"),
        html.Div(id="compare-table-div"),
        dcc.Graph(id="compare-curves"),
        html.H2("Capacity planner"),
        html.Div([
            html.Label("Target load (req/s) "), dcc.Input(id="plan-target", type="number", min=0, value=10000),
            html.Label(" price per server-hour (optional) "), dcc.Input(id="plan-price", type="number", min=0),
        ]),
        html.Div(id="plan"),
        html.H2("Capacity map and resources"),
        html.Div([dcc.Graph(id="heatmap"), dcc.Graph(id="resources")]),
    ], style={"maxWidth": "1200px", "margin": "auto", "fontFamily": "system-ui, sans-serif"})


def create_app(run_dir: str | Path) -> dash.Dash:
    """The Dash app for a run directory (UsageError when it is missing or malformed)."""
    board = Dashboard(run_dir)
    app = dash.Dash(__name__, title=f"tritune: {board.run.model}")
    app.layout = _layout(board)
    app.board = board  # type: ignore[attr-defined]  # tests reach the callbacks through it
    filters = [Input("budget", "value"), Input("f-count", "value"), Input("f-batch", "value"),
               Input("f-delay", "value"), Input("version", "data")]
    app.callback(Output("version", "data"), Input("tick", "n_intervals"), State("version", "data"))(board.on_tick)
    app.callback(Output("answer", "children"), Output("pareto", "figure"), Output("chosen", "data"), *filters)(board.answer)
    app.callback(Output("detail", "children"), Output("detail-curves", "figure"), Output("detail-breakdown", "figure"),
                 Output("detail-pbtxt", "children"), Output("detail-id", "data"),
                 Input("pareto", "clickData"), Input("chosen", "data"), Input("budget", "value"), Input("version", "data"))(board.detail)
    app.callback(Output("download", "data"), Input("download-button", "n_clicks"), State("detail-id", "data"),
                 prevent_initial_call=True)(board.download)
    app.callback(Output("compare-table-div", "children"), Output("compare-curves", "figure"),
                 Input("compare-a", "value"), Input("compare-b", "value"), Input("budget", "value"),
                 Input("version", "data"))(board.compare)
    app.callback(Output("plan", "children"), Input("plan-target", "value"), Input("plan-price", "value"),
                 Input("chosen", "data"), Input("budget", "value"), Input("version", "data"))(board.plan)
    app.callback(Output("heatmap", "figure"), Output("resources", "figure"), Input("version", "data"))(board.static_figures)
    app.callback(Output("confirm-figure", "figure"), Input("version", "data"))(board.confirmation)
    app.callback(Output("compare-a", "options"), Input("version", "data"))(board.config_choices)
    app.callback(Output("compare-b", "options"), Input("version", "data"))(board.config_choices)
    return app

