"""A running server's models as they were before tritune changed them: recorded once, put back
on every way out.

A server given by `--url` is the user's, and may be serving real traffic. Before tritune first
changes a model on it (loads a config onto it, or loads it at all) the model's state goes to the
run directory's `originals.json`: whether it was loaded, and the config it served (the JSON the
server's config API answers, which is what its load API takes). The record is written
atomically before the change, and the server is never asked again: a run resumed after
`kill -9` finds the server on a candidate config, says so, and goes on from the record.

Putting back (`restore`): a model that was loaded gets its recorded config through the load API
as an explicit override (a plain reload would keep the last candidate: Triton keeps a load's
override until the model is unloaded), and is then read back to check that the server serves
exactly the record. A model that was not loaded before is unloaded. A model already serving its
record is left alone, so a production model is not reloaded for nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from analyzer.config.modelconfig import from_dict, knobs_of, parse_pbtxt, to_pbtxt
from analyzer.errors import UsageError
from analyzer.files import write_atomic
from analyzer.server.control import ServerControl


@dataclass
class Original:
    """One model as it was before tritune's first change."""

    loaded: bool  # ready on the server then (else tritune loaded it, and unloads it at the end)
    # The config it served then, as the config API answered it. For a model tritune loaded
    # itself: the config it came up with (what its candidates modify); None until it is loaded.
    config: dict[str, Any] | None = None

    @property
    def pbtxt(self) -> str | None:
        """The recorded config as config.pbtxt text (what is compared with the server's)."""
        return None if self.config is None else canonical(self.config)


def canonical(config: dict[str, Any]) -> str:
    """A served config (the config API's JSON) as config.pbtxt text: the form the record keeps
    and compares (protobuf's text format is deterministic, field by field)."""
    return to_pbtxt(from_dict(config))


def knobs_line(pbtxt: str) -> str:
    """The tuned knobs of a config, for messages."""
    k = knobs_of(parse_pbtxt(pbtxt))
    delay = "-" if k.max_queue_delay_us is None else f"{k.max_queue_delay_us} us"
    return f"instances {k.instance_count}, max_batch_size {k.max_batch_size}, queue delay {delay}"


class Originals:
    """The originals record of one run (RUN_DIR/originals.json) for one server.

    `attach` makes every load and unload through the control client record its model first;
    `base_config` gives the config a model's candidates modify, from the record."""

    def __init__(self, path: Path, url: str, protocol: str, models: dict[str, Original]) -> None:
        self.path, self.url, self.protocol = Path(path), url, protocol
        self.models = models
        self._control: ServerControl | None = None
        self._on_first: Callable[[], None] = lambda: None

    # -- the record ------------------------------------------------------------------------------
    @staticmethod
    def read(path: str | Path) -> Originals:
        """The record in `path`; UsageError when it is missing or unreadable."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            models = {
                str(name): Original(bool(m["loaded"]), m.get("config")) for name, m in data["models"].items()
            }
            # A config that does not parse is refused here, not when it is needed at the end.
            _ = [original.pbtxt for original in models.values()]
            return Originals(path, str(data["server"]["url"]), str(data["server"]["protocol"]), models)
        except FileNotFoundError:
            raise UsageError(
                f"{path.parent} has no {path.name}: its sweep changed no running server "
                "(a server tritune launches itself is stopped at the end, with nothing to put back)"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, json_format.ParseError) as exc:
            raise UsageError(f"{path} is not a readable originals record: {exc}") from None

    @staticmethod
    def open(path: str | Path, url: str, protocol: str) -> Originals:
        """The run's record (a resumed run's, as written), or a new empty one for this server."""
        path = Path(path)
        return Originals.read(path) if path.exists() else Originals(path, url, protocol, {})

    def _write(self) -> None:
        data = {
            "server": {"url": self.url, "protocol": self.protocol},
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "models": {n: {"loaded": m.loaded, "config": m.config} for n, m in self.models.items()},
        }
        write_atomic(self.path, json.dumps(data, indent=2) + "\n")

    def attach(self, control: ServerControl, on_first: Callable[[], None] = lambda: None) -> None:
        """Record each model before `control` first loads or unloads it; `on_first` runs once,
        before the first model of a new record is written (the warning that tritune reconfigures
        live models)."""
        self._control = control
        self._on_first = on_first
        control.before_change = self.record

    def record(self, name: str) -> Original:
        """Record `name` as it is now, unless it is recorded already (the record is never
        overwritten from the server)."""
        if name in self.models:
            return self.models[name]
        assert self._control is not None, "attach() a control client first"
        loaded = self._control.is_ready(name)
        config = self._control.model_config(name) if loaded else None
        if not self.models:
            self._on_first()
        self.models[name] = Original(loaded, config)
        self._write()
        return self.models[name]

    def base_config(self, name: str) -> str:
        """The config `name`'s candidates modify, as recorded (config.pbtxt text). A model that
        was not loaded is loaded first, as its repository has it, and recorded as not loaded (it
        is unloaded at the end)."""
        original = self.record(name)
        if original.config is None:
            assert self._control is not None
            self._control.load_model(name)
            original.config = self._control.model_config(name)
            self._write()
        assert original.pbtxt is not None
        return original.pbtxt

    # -- the server against the record -----------------------------------------------------------
    def differences(self, control: ServerControl) -> list[str]:
        """How the server differs from the record now (a resumed run after tritune was killed):
        one line per model that is not as recorded."""
        lines = []
        for name, original in self.models.items():
            now = _served(control, name)
            if original.loaded and original.pbtxt is not None and now != original.pbtxt:
                have = "is not loaded" if now is None else f"serves {knobs_line(now)}"
                lines.append(
                    f"{name} on {self.url} {have}, not its recorded original "
                    f"({knobs_line(original.pbtxt)}): an earlier run was stopped before it could put it "
                    f"back. Going on from the record ({self.path}); it is put back at the end"
                )
            elif not original.loaded and now is not None:
                lines.append(
                    f"{name} on {self.url} is loaded, though it was not before the sweep: it is unloaded "
                    "at the end"
                )
        return lines

    def restore(self, control: ServerControl, say: Callable[[str], None]) -> list[tuple[str, str]]:
        """Put every recorded model back; returns (model, why) for each that could not be.

        Loaded models first, in the order they were recorded, then the models tritune loaded
        itself are unloaded, in the reverse order. Reloading a composing model makes Triton
        reload the ensembles on it, and one reloaded while another of its steps is still loading
        can end up unavailable: so a second pass checks every loaded model against the record
        and loads again the ones that are not as recorded. A failure is kept and the rest still
        tried: one broken model must not leave the others changed."""
        loaded = [(n, o) for n, o in self.models.items() if o.loaded and o.config is not None]
        added = [n for n, o in reversed(list(self.models.items())) if not o.loaded]
        done: list[str] = []
        errors: dict[str, str] = {}
        for _ in range(2):
            for name, original in loaded:
                try:
                    if _served(control, name) == original.pbtxt:
                        errors.pop(name, None)
                        continue
                    say(f"putting back the original config of {name} on {self.url}")
                    control.load_model(name, original.config)
                    now = _served(control, name)
                    if now == original.pbtxt:
                        errors.pop(name, None)
                        if f"{name} (its config loaded again)" not in done:
                            done.append(f"{name} (its config loaded again)")
                    else:
                        have = "nothing" if now is None else knobs_line(now)
                        errors[name] = f"the server serves {have} after loading the recorded config"
                except Exception as exc:  # noqa: BLE001 - any failure: reported, the other models still tried
                    errors[name] = _reason(exc)
        for name in added:
            try:
                if control.is_ready(name):
                    say(f"unloading {name} from {self.url} (it was not loaded before the sweep)")
                    control.unload_model(name)
                    done.append(f"{name} (unloaded)")
            except Exception as exc:  # noqa: BLE001 - as above
                errors[name] = _reason(exc)
        if done:
            say(f"the server at {self.url} has its original configs back: {', '.join(done)}")
        return list(errors.items())


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc or type(exc).__name__)


def _served(control: ServerControl, name: str) -> str | None:
    """The config `name` serves now (config.pbtxt text), or None when it is not loaded."""
    if not control.is_ready(name):
        return None
    return canonical(control.model_config(name))


def restore_failed_text(failures: list[str], run_dir: Path, record: Path) -> str:
    """The message for originals that could not be put back ("model: why" each), with the ways
    to put them back later."""
    return (
        f"could not put back the original config of {'; '.join(failures)}\n"
        "  the server may still serve a candidate config. To restore: run "
        f"`tritune restore {run_dir}` (add --url HOST:PORT if the server moved). By hand: load each "
        f"model's \"config\" in {record} through Triton's load API with that config as the override "
        '(POST /v2/repository/models/NAME/load), and unload the models marked "loaded": false'
    )
