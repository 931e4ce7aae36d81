"""What a sweep will do before it measures: the plan of its models and the preflight checks."""
