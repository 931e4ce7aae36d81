"""What a candidate config is and how it is applied: model configs, the search space, pipelines."""
