"""The statistics of one load level (Measurement, percentiles, the claim bounds) and its timeline."""
