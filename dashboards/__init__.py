"""The interactive Dash report over a run directory: create_app(run_dir) -> dash.Dash."""

from dashboards.app import create_app
from dashboards.callbacks import Dashboard

__all__ = ["Dashboard", "create_app"]
