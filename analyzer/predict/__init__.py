"""A model of the server, fitted from what a sweep measured: each config's throughput and latency
at any load predicted from the service time per execution (a function of the batch size and of
how many instances share the hardware) and the dynamic batcher's rules, with an interval from
the fit. Pure: measurement rows in, predictions out (analyzer.predict.server_model)."""

from analyzer.predict.server_model import Level, ServerModel, fit, levels_from_rows

__all__ = ["Level", "ServerModel", "fit", "levels_from_rows"]
