"""The interactive Dash report over a run directory: create_app(run_dir) -> dash.Dash."""

from dashboards.app import Dashboard, create_app

__all__ = ["Dashboard", "create_app"]
