"""Control a Triton server through its public API (same code for local and remote servers).

Health checks, the model repository index, model metadata and config, loading a model (with an
optional config override: the load API), and the statistics endpoint. Answers are normalised to
plain dicts with the HTTP API's shape, whichever protocol carries them.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from analyzer.errors import (
    LoadTimeoutError,
    ModelLoadError,
    ModelNotFoundError,
    ModelNotReadyError,
    ServerDiedError,
    ServerError,
    ServerUnreachableError,
    UsageError,
)
from analyzer.server.endpoint import Endpoint

try:  # tritonclient raises this for every server-side error
    from tritonclient.utils import InferenceServerException
except ImportError:  # pragma: no cover - tritonclient is a hard dependency
    InferenceServerException = Exception


# Fields whose int64 values protobuf's JSON writes as decimal strings.
_INT64_KEYS = frozenset(
    {
        "count",
        "ns",
        "inference_count",
        "execution_count",
        "last_inference",
        "shape",
        "dims",
        "max_queue_delay_microseconds",
        "preferred_batch_size",
        "default_queue_policy_timeout",
    }
)


def _ints(obj: Any, key: str | None = None) -> Any:
    """Turn int64 fields that gRPC's JSON carries as strings back into ints, recursively."""
    if isinstance(obj, dict):
        return {k: _ints(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ints(v, key) for v in obj]
    if key in _INT64_KEYS and isinstance(obj, str) and obj.lstrip("-").isdigit():
        return int(obj)
    return obj


class ServerControl:
    """Administrative calls to one server over gRPC or HTTP.

    `log_reader` (local servers only) returns what the server logged since a given offset, so a
    refused load can show the server's own reason, which the API answer often lacks.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        protocol: str = "grpc",
        *,
        timeout_s: float = 10.0,
        load_timeout_s: float = 300.0,
        log_offset: Callable[[], int] | None = None,
        log_since: Callable[[int], str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.url = endpoint.url(protocol)
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self._log_offset = log_offset
        self._log_since = log_since
        # Called with a model's name before each load or unload (analyzer.server.originals
        # records the model there before tritune first changes it on a running server).
        self.before_change: Callable[[str], object] | None = None
        if protocol == "grpc":
            import tritonclient.grpc as grpcclient

            self._client: Any = grpcclient.InferenceServerClient(self.url)
        else:
            import tritonclient.http as httpclient

            self._client = httpclient.InferenceServerClient(
                self.url, connection_timeout=timeout_s, network_timeout=max(timeout_s, load_timeout_s)
            )

    def close(self) -> None:
        """Release the client's connections."""
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing must never mask the real outcome
            pass

    def __enter__(self) -> ServerControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level ---------------------------------------------------------------------------
    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self._client, name)
        if self.protocol == "grpc":
            kwargs.setdefault("client_timeout", self.timeout_s)
            if name.startswith("get_"):
                kwargs.setdefault("as_json", True)
        return method(*args, **kwargs)

    # -- health ------------------------------------------------------------------------------
    def check_reachable(self) -> None:
        """Raise ServerUnreachableError unless the server answers and is live."""
        try:
            live = self._call("is_server_live")
        except Exception as exc:  # noqa: BLE001 - every transport error means the same here
            other = "HTTP port (8000)" if self.protocol == "grpc" else "gRPC port (8001)"
            raise ServerUnreachableError(
                f"cannot reach a Triton server at {self.url} over {self.protocol}: {_short(exc)}",
                hint=f"check that the server runs and that --url names its {self.protocol} port "
                f"(with --protocol {'http' if self.protocol == 'grpc' else 'grpc'} it would be the {other})",
            ) from None
        if not live:
            raise ServerUnreachableError(f"the Triton server at {self.url} is not live")

    def is_live(self) -> bool:
        """True when the server answers its liveness check (within the admin timeout)."""
        try:
            return bool(self._call("is_server_live"))
        except Exception:  # noqa: BLE001 - any failure to answer means not live
            return False

    def server_metadata(self) -> dict[str, Any]:
        """The server's name, version and extensions."""
        return dict(self._call("get_server_metadata"))

    # -- repository --------------------------------------------------------------------------
    def repository_index(self) -> list[dict[str, Any]]:
        """Models the server's repository holds: [{name, version, state, reason}]."""
        try:
            answer = self._call("get_model_repository_index")
        except InferenceServerException as exc:
            raise ServerError(
                f"the server at {self.url} refused the repository index: {_short(exc)}"
            ) from None
        models = answer.get("models", []) if isinstance(answer, dict) else answer
        return [dict(m) for m in models]

    def model_names(self) -> list[str]:
        """Sorted names of all models in the server's repository."""
        return sorted({m["name"] for m in self.repository_index()})

    def require_model(self, name: str) -> None:
        """Raise ModelNotFoundError (listing what exists) unless `name` is in the repository."""
        names = self.model_names()
        if name not in names:
            listing = ", ".join(names) if names else "(none)"
            raise ModelNotFoundError(
                f"model {name!r} not found on the server at {self.url}; it has: {listing}",
                hint="pass --model with one of those names",
            )

    def is_ready(self, name: str) -> bool:
        """True when `name` is loaded and ready (False also for a model the server does not know)."""
        try:
            return bool(self._call("is_model_ready", name))
        except InferenceServerException:
            return False

    def require_ready(self, name: str) -> None:
        """Raise ModelNotFoundError or ModelNotReadyError unless `name` is loaded and ready."""
        self.require_model(name)
        if self.is_ready(name):
            return
        states = [m for m in self.repository_index() if m["name"] == name]
        state = states[0].get("state") or "UNAVAILABLE" if states else "UNKNOWN"
        reason = states[0].get("reason", "") if states else ""
        raise ModelNotReadyError(
            f"model {name!r} is not ready on {self.url} (state {state}"
            + (f": {reason}" if reason else "")
            + ")",
            hint="load it on the server first, or let tritune launch a local server with --model-repository",
        )

    def load_model(self, name: str, config: dict[str, Any] | None = None) -> None:
        """Load (or reload) a model, optionally overriding its config (the load API).

        On refusal raises ModelLoadError carrying the server's reason: the API's message plus
        the error lines the server logged meanwhile (local servers).
        """
        if self.before_change is not None:
            self.before_change(name)
        offset = self._log_offset() if self._log_offset else None
        kwargs: dict[str, Any] = {}
        if config is not None:
            kwargs["config"] = json.dumps(config)
        try:
            if self.protocol == "grpc":
                # Loads can take long (python models start processes); never the admin timeout.
                self._client.load_model(name, client_timeout=self.load_timeout_s, **kwargs)
            else:
                self._client.load_model(name, **kwargs)
        except InferenceServerException as exc:
            text = str(exc).lower()
            if "deadline" in text or "timed out" in text or "timeout" in text:
                raise LoadTimeoutError(
                    f"loading model {name!r} did not finish within {self.load_timeout_s:g} s "
                    "(the server may be stuck on requests to the previous config)",
                    log_tail=self._logged_errors(offset),
                ) from None
            if "not allowed" in text and ("polling" in text or "explicit" in text or "mode" in text):
                raise UsageError(
                    f"the server at {self.url} is not in explicit model-control mode, so tritune cannot "
                    f"apply configs to it: {_short(exc)}",
                    hint="restart tritonserver with --model-control-mode=explicit (models to serve at start: "
                    "--load-model=NAME)",
                ) from None
            if not self.is_live():  # the refusal came from a server that is gone, not from the model
                raise ServerDiedError(
                    f"lost the server at {self.url} while loading {name!r}: {_short(exc)}"
                ) from None
            reasons = self._logged_errors(offset)
            message = f"the server refused to load model {name!r}: {_short(exc)}"
            raise ModelLoadError(message, log_tail=reasons) from None
        except Exception as exc:  # noqa: BLE001 - transport failures of the HTTP client
            kind = type(exc).__name__.lower()
            if "timeout" in kind:
                raise LoadTimeoutError(
                    f"loading model {name!r} did not finish within {self.load_timeout_s:g} s"
                ) from None
            raise ServerDiedError(
                f"lost the server at {self.url} while loading {name!r}: {_short(exc)}"
            ) from None

    def unload_model(self, name: str) -> None:
        """Unload a model (errors are reported as ServerError)."""
        if self.before_change is not None:
            self.before_change(name)
        try:
            self._call("unload_model", name)
        except InferenceServerException as exc:
            raise ServerError(f"could not unload model {name!r}: {_short(exc)}") from None

    def _logged_errors(self, offset: int | None) -> str:
        if offset is None or self._log_since is None:
            return ""
        text = self._log_since(offset)
        # Error lines of Triton's log start with "E<MMDD>"; keep those and python tracebacks.
        keep = [line for line in text.splitlines() if re.match(r"^E\d{4} ", line) or "Error" in line]
        return "\n".join(keep[-15:])

    # -- model description -----------------------------------------------------------------
    def model_metadata(self, name: str) -> dict[str, Any]:
        """The model's metadata: inputs/outputs with datatypes and shapes (-1 = variable)."""
        try:
            return _ints(self._call("get_model_metadata", name))
        except InferenceServerException as exc:
            raise ModelNotReadyError(f"cannot read metadata of model {name!r}: {_short(exc)}") from None

    def model_config(self, name: str) -> dict[str, Any]:
        """The model's config as the server completed it (HTTP JSON shape)."""
        try:
            answer = self._call("get_model_config", name)
        except InferenceServerException as exc:
            raise ModelNotReadyError(f"cannot read config of model {name!r}: {_short(exc)}") from None
        if self.protocol == "grpc":
            answer = answer.get("config", answer)
        return _ints(answer)

    def statistics(self, name: str) -> dict[str, Any]:
        """Cumulative inference statistics of the model's (first) version."""
        try:
            answer = self._call("get_inference_statistics", name)
        except InferenceServerException as exc:
            raise ServerError(f"cannot read statistics of model {name!r}: {_short(exc)}") from None
        stats = _ints(answer).get("model_stats", [])
        return stats[0] if stats else {}

    def metrics_text(self) -> str | None:
        """Prometheus metrics text, or None when the metrics port is unknown or silent."""
        url = self.endpoint.metrics_url()
        if url is None:
            return None
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                return resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError):
            return None


def _short(exc: BaseException) -> str:
    """A one-paragraph form of a client exception."""
    text = str(exc).strip()
    if hasattr(exc, "message") and callable(exc.message):
        try:
            text = exc.message() or text
        except Exception:  # noqa: BLE001 - a message() that fails leaves str(exc)
            pass
    return re.sub(r"\s+", " ", text)[:600]
