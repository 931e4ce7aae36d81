"""The sweep spec and its sections."""
