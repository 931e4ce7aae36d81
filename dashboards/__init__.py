"""The interactive Dash report over a run directory (create_app(run_dir) -> dash.Dash)."""
