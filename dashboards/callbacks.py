"""The dashboard's callbacks, as methods of `Dashboard`: plain functions of their inputs that
return Dash components and Plotly figures, so tests call them directly (`dashboards.app` only
wires them to the layout).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import dash
import plotly.graph_objects as go
from dash import html

from analyzer.judge.confirm_stats import confirmation_stats
from analyzer.report import (
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
    load_curves_data,
    load_curves_figure,
    pareto_data,
    pareto_figure,
    replicas_needed,
    resources_data,
    resources_figure,
    search_rows,
)
from dashboards.data import DELAY_OFF, RunView
from dashboards.views import answer_card, compare_table, miss_card, steps_table

FILTERS = (("counts", "f-count"), ("batches", "f-batch"), ("delays", "f-delay"))  # options key, element id
HIDDEN = {"display": "none"}  # a chart with nothing to show is not drawn at all (no empty axes)


def joined_pbtxts(texts: dict[str, str]) -> str:
    """A pipeline's config.pbtxt files as one text, each under a '# <model>/config.pbtxt' line."""
    return "\n".join(f"# {name}/config.pbtxt\n{text}" for name, text in texts.items())


def filter_choices(key: str, values: list[int]) -> list[dict[str, Any]]:
    """Checklist options for one filter's knob values (a queue delay of DELAY_OFF reads "off")."""
    return [{"label": "off" if key == "delays" and v == DELAY_OFF else str(v), "value": v} for v in values]


def follow_selection(present: list[int], shown: list[Any] | None, selected: list[int] | None) -> list[int]:
    """A filter's selection after its options changed to `present`: what the user had selected
    that is still there, plus every value that is new since `shown` (a knob value that appears
    while a sweep runs is shown, not hidden); values the user cleared stay cleared."""
    before = {o["value"] if isinstance(o, dict) else o for o in shown or []}
    chosen = set(selected or [])
    return [v for v in present if v in chosen or v not in before]


class Dashboard(RunView):
    """The data behind the app (`RunView`) and every callback, as plain methods."""

    def on_tick(self, _n: int | None, version: Any) -> Any:
        """Interval tick: bump the page's data version when the run directory changed (or when
        the page's version is not the one read last: a page opened before another tab's tick)."""
        changed = self.refresh()
        current = list(self._version)
        if changed or version != current:
            return current
        return dash.no_update

    def filter_options(
        self,
        _version: Any,
        counts: list[int] | None,
        batches: list[int] | None,
        delays: list[int] | None,
        count_options: list[Any] | None = None,
        batch_options: list[Any] | None = None,
        delay_options: list[Any] | None = None,
    ) -> tuple[Any, ...]:
        """The filters' (options, value) pairs, in FILTERS order, after the data changed: the knob
        values present now, keeping the user's choice where it is still valid (`*_options`: each
        checklist's options before). Then whether each filter's group is hidden (no values: a
        pipeline's batch and delay, or a run with no config yet)."""
        present = self.options()
        selected = (counts, batches, delays)
        shown = (count_options, batch_options, delay_options)
        out: list[Any] = []
        for (key, _), before, chosen in zip(FILTERS, shown, selected):
            options = filter_choices(key, present[key])
            if before == options:
                out += [dash.no_update, dash.no_update]  # unchanged: do not re-run what depends on it
            else:
                out += [options, follow_selection(present[key], before, chosen)]
        return tuple(out) + tuple(not present[key] for key, _ in FILTERS)

    def budget_bounds(self, _version: Any) -> tuple[float, float]:
        """The budget slider's (min, max) after the data changed: latencies measured later in a
        running sweep can pass the bound the page was built with."""
        return self.budget_range()

    def answer(
        self,
        budget: float | None,
        counts: list[int] | None,
        batches: list[int] | None,
        delays: list[int] | None,
        _version: Any = None,
    ) -> tuple[Any, Any, str | None]:
        """Best config under the slider's budget: (answer card, Pareto figure, chosen config id).
        At the sweep's budget it is the sweep's choice (the confirmation round's pick, as in
        summary.json); elsewhere the best search capacity under the slider's budget."""
        budget = float(budget if budget is not None else self.run.budget_ms)
        m, c = self.filtered(counts, batches, delays)
        answer = answer_at(self.run, budget, m, c)
        caps = capacity_under_budget(m, budget, self.run.percentile, self.run.confidence)
        meeting = int((caps["capacity_rps"] > 0).sum()) if not caps.empty else 0
        chosen = None
        if answer.best is not None:
            chosen = (str(answer.best["config_id"]), float(answer.best["capacity_level"]))
            card = answer_card(
                self.run, answer, self.label, meeting, len(caps), filtered=len(c) < len(self.run.configs)
            )
        else:
            card = miss_card(budget, len(caps))
        fig = pareto_figure(pareto_data(m, budget, chosen, self.run.percentile))
        # The title below the chart's toolbar (it is long enough to run under the icons).
        fig.update_layout(
            height=540,
            uirevision="pareto",
            margin={"t": 70, "r": 10},
            title={"yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 32}},
        )
        return card, fig, chosen[0] if chosen else None

    def detail(
        self, click: dict[str, Any] | None, chosen: str | None, budget: float | None, _version: Any = None
    ) -> tuple[Any, Any, Any, str, str | None]:
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
        curves = load_curves_figure(
            load_curves_data(m, percentile=self.run.percentile),
            str(search["load_mode"].iloc[0]) if not search.empty else "level",
            float(budget) if budget is not None else self.run.budget_ms,
            self.label,
        )
        curves.update_layout(height=320, title=f"Load curve of {config_id}")
        breakdown = breakdown_figure(breakdown_data(m, c)).update_layout(height=320)
        facts = []
        if not c.empty:
            r = c.iloc[-1]
            confirmed = confirmed_text(confirmation_stats(m).set_index("config_id"), config_id)
            facts = [
                html.H4(config_id, id="detail-config-id"),
                html.P(
                    f"status {r['status']}; capacity {capacity_text(r)} "
                    f"(sweep budget {self.label} {self.run.budget_ms:g} ms); "
                    f"{int(r['levels_measured'])} load levels"
                    + (f"; confirmation round: {confirmed}" if confirmed else "")
                    + (f"; error: {r['error']}" if isinstance(r.get("error"), str) and r["error"] else "")
                ),
            ]
        texts = self.config_pbtxts(config_id)
        if self.pipeline and not c.empty:
            facts += [steps_table(self.run, c.iloc[-1])]
            # One link per tuned model: each config.pbtxt downloads on its own.
            facts += [
                html.P(
                    [
                        html.A(
                            f"download {name}/config.pbtxt",
                            id=f"download-{name}",
                            download=f"{name}.config.pbtxt",
                            className="me-3",
                            href="data:text/plain;charset=utf-8," + urllib.parse.quote(text),
                        )
                        for name, text in texts.items()
                    ],
                    id="detail-downloads",
                )
            ]
            pbtxt = joined_pbtxts(texts)
        else:
            pbtxt = next(iter(texts.values()), "")
        pbtxt = pbtxt or "(no base config in this run directory)"
        return html.Div(facts), curves, breakdown, pbtxt, config_id

    def download(self, _clicks: int | None, config_id: str | None) -> Any:
        """The config.pbtxt of the detailed config as a file download (a pipeline: all its
        models' in one text file; each also has its own link in the detail view)."""
        texts = self.config_pbtxts(config_id) if config_id else {}
        if not texts:
            return dash.no_update
        if self.pipeline:
            return {"content": joined_pbtxts(texts), "filename": "pipeline-configs.txt"}
        return {"content": next(iter(texts.values())), "filename": "config.pbtxt"}

    def compare(
        self, a: str | None, b: str | None, budget: float | None, _version: Any = None
    ) -> tuple[Any, go.Figure | None]:
        """Side-by-side table and overlaid load curves of two configs; until two different
        configs are picked, a hint and no figure."""
        ids = list(dict.fromkeys(x for x in (a, b) if x))
        if len(ids) < 2:
            hint = (
                "Pick two configs to compare."
                if not ids
                else "Pick two different configs to compare."
                if a == b
                else f"Pick a second config to compare with {ids[0]}."
            )
            return html.P(hint, id="compare-hint", className="text-muted"), None
        budget = float(budget if budget is not None else self.run.budget_ms)
        table = compare_table(self.run, ids, budget, self.label)
        fig = load_curves_figure(
            load_curves_data(self.run.measurements, ids, self.run.percentile), "level", budget, self.label
        ).update_layout(height=340)
        return table, fig

    def compare_view(
        self, a: str | None, b: str | None, budget: float | None, _version: Any = None
    ) -> tuple[Any, go.Figure, dict[str, str]]:
        """`compare` for the page: the chart is hidden while there is no figure."""
        table, fig = self.compare(a, b, budget, _version)
        return table, fig if fig is not None else go.Figure(), {} if fig is not None else HIDDEN

    def plan(
        self,
        target: float | None,
        price: float | None,
        chosen: str | None,
        budget: float | None,
        _version: Any = None,
    ) -> Any:
        """Replicas of the chosen config needed for a target load, and cost per million."""
        if not chosen:
            return "No config meets the budget, so there is nothing to plan with."
        if target is None or target <= 0:
            return "Enter a target load in requests per second."
        budget = float(budget if budget is not None else self.run.budget_ms)
        capacity, source = self.capacity_of(chosen, budget)
        if capacity <= 0:
            return f"{chosen} has no capacity under {budget:g} ms."
        target = float(target)
        replicas = replicas_needed(target, capacity)
        text = [
            html.P(
                [
                    f"{chosen} serves {capacity:.1f} req/s per server within {budget:g} ms ({source}): ",
                    html.B(f"{replicas} server replica{'s' if replicas != 1 else ''}", id="plan-replicas"),
                    f" for {target:g} req/s ({target / (replicas * capacity):.0%} of their capacity).",
                ]
            )
        ]
        if price is not None and price > 0:
            cost = cost_per_million(target, replicas, float(price))
            text.append(
                html.P(
                    [
                        "Cost per million inferences: ",
                        html.B(f"{cost:.4f}", id="plan-cost"),
                        (
                            f" (at {float(price):g} per server-hour, serving {target:g} req/s "
                            "around the clock)."
                        ),
                    ]
                )
            )
        return html.Div(text)

    def confirmation(self, _version: Any = None) -> Any:
        """The confirmation figure: the round's samples, means and intervals, the tie set."""
        answer = answer_at(self.run)
        chosen = None if answer.best is None else str(answer.best["config_id"])
        fig = confirmation_figure(
            confirmation_data(self.run.measurements, self.run.configs, answer.tie_set, chosen)
        )
        return fig if fig.layout.height else fig.update_layout(height=380)

    def static_figures(self, _version: Any = None) -> tuple[Any, Any]:
        """The heatmap and resource figures (redrawn when data changes)."""
        return (
            heatmap_figure(heatmap_data(self.run.configs)).update_layout(height=360),
            resources_figure(resources_data(self.run.measurements)).update_layout(height=360),
        )

    def config_choices(self, _version: Any = None) -> list[dict[str, str]]:
        """Dropdown options: every config of the run."""
        return [{"label": str(i), "value": str(i)} for i in self.run.configs["config_id"].tolist()]
