"""Where a Triton server answers: host and the ports of each protocol."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.errors import UsageError

PROTOCOLS = ("grpc", "http")


@dataclass(frozen=True)
class Endpoint:
    """Host and ports of one server; a port is None when unknown (remote servers)."""

    host: str
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None

    def url(self, protocol: str) -> str:
        """HOST:PORT for the given protocol ("grpc" or "http")."""
        port = self.grpc_port if protocol == "grpc" else self.http_port
        if port is None:
            raise UsageError(f"no {protocol} port known for server {self.host}")
        return f"{self.host}:{port}"

    def metrics_url(self) -> str | None:
        """The Prometheus endpoint, when its port is known."""
        if self.metrics_port is None:
            return None
        return f"http://{self.host}:{self.metrics_port}/metrics"


def parse_url(url: str, protocol: str, metrics_port: int | None = None) -> Endpoint:
    """Parse a user's --url (HOST:PORT, optionally with a scheme) for `protocol`.

    The port is the one of the chosen protocol: Triton's defaults are 8001 for gRPC and 8000 for
    HTTP, used when the URL names no port.
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    text = url.strip()
    for scheme in ("http://", "https://", "grpc://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if not text or "/" in text:
        raise UsageError(f"--url {url!r} is not HOST:PORT", hint="for example --url localhost:8001")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, ("8001" if protocol == "grpc" else "8000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise UsageError(
            f"--url {url!r}: port {port_text!r} is not a number from 1 to 65535",
            hint="for example --url localhost:8001",
        ) from None
    if protocol == "grpc":
        return Endpoint(host, grpc_port=port, metrics_port=metrics_port)
    return Endpoint(host, http_port=port, metrics_port=metrics_port)
