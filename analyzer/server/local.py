"""Launch, watch and stop a local tritonserver process.

The server runs in explicit model-control mode on free loopback ports, with its log captured to a
file. It starts in its own session (so a terminal Ctrl-C reaches tritune, which then stops the
server in order) and is tied to our process with PR_SET_PDEATHSIG, and a guard process
(analyzer.server.guard) kills its whole process group, python-backend stubs included, once we
are gone: a killed tritune never leaves an orphaned server or stub behind.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from analyzer.errors import PortInUseError, ServerStartError, UsageError
from analyzer.server.discovery import TritonInstall
from analyzer.server.endpoint import Endpoint
from analyzer.server.guard import spawn_guard, stop_guard

LOOPBACK = "127.0.0.1"
_ACTIVE: set[LocalServer] = set()


def _stop_all_at_exit() -> None:
    for server in list(_ACTIVE):
        server.stop()


atexit.register(_stop_all_at_exit)


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on host:port (checked by binding it, as a server would: with
    SO_REUSEADDR, so connections of a stopped server lingering in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_block(count: int = 3, host: str = LOOPBACK) -> int:
    """Return a base port P such that P..P+count-1 are all free on host right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            base = sock.getsockname()[1]
        if base + count < 65535 and all(port_is_free(base + i, host) for i in range(1, count)):
            return base
    raise PortInUseError("could not find free loopback ports for tritonserver")


def _pdeathsig() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGKILL the server when the
    # process that started it dies, whatever way it dies (kill -9 included).
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


def read_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class LocalServer:
    """A tritonserver child process serving one model repository on loopback.

    Use as a context manager, or call start()/stop(). `base_port` pins the HTTP port (gRPC is
    base+1, metrics base+2); without it free ports are chosen.
    """

    def __init__(
        self,
        install: TritonInstall,
        model_repository: str | os.PathLike[str],
        log_path: str | os.PathLike[str],
        *,
        base_port: int | None = None,
        startup_timeout_s: float = 60.0,
        exit_timeout_s: float = 10.0,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        control_mode: str = "explicit",
    ) -> None:
        self.install = install
        self.model_repository = Path(model_repository).resolve()
        self.log_path = Path(log_path)
        self.base_port = base_port
        self.startup_timeout_s = startup_timeout_s
        self.exit_timeout_s = exit_timeout_s
        self.extra_args = extra_args
        self.extra_env = env or {}
        self.control_mode = control_mode  # "explicit" for tritune; others only to test refusals
        self.process: subprocess.Popen[bytes] | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self.endpoint: Endpoint | None = None
        if not self.model_repository.is_dir():
            raise UsageError(
                f"model repository {self.model_repository} is not a directory",
                hint="pass the directory that holds <model>/config.pbtxt",
            )

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None else None

    def command(self, endpoint: Endpoint) -> list[str]:
        """The command line that starts the server on `endpoint`."""
        cmd = [
            str(self.install.binary),
            f"--model-repository={self.model_repository}",
            f"--model-control-mode={self.control_mode}",
            f"--http-address={endpoint.host}",
            f"--http-port={endpoint.http_port}",
            f"--grpc-address={endpoint.host}",
            f"--grpc-port={endpoint.grpc_port}",
            f"--metrics-address={endpoint.host}",
            f"--metrics-port={endpoint.metrics_port}",
            f"--exit-timeout-secs={int(self.exit_timeout_s)}",
            "--allow-gpu-metrics=false",
        ]
        if self.install.backend_dir is not None:
            cmd.append(f"--backend-directory={self.install.backend_dir}")
        cmd.extend(self.extra_args)
        return cmd

    def environment(self) -> dict[str, str]:
        """The server's environment: our interpreter's bin/ first on PATH, the wheel's libs.

        Python-backend models import from the environment whose bin/ leads PATH (checked on
        this project's machines), so models resolve numpy where tritune is installed.
        """
        env = dict(os.environ)
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        libdirs = [str(p) for p in self.install.library_dirs]
        if env.get("LD_LIBRARY_PATH"):
            libdirs.append(env["LD_LIBRARY_PATH"])
        if libdirs:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(libdirs)
        env.update(self.extra_env)
        return env

    def start(self) -> Endpoint:
        """Start the server and wait until it is ready; returns its endpoint."""
        if self.process is not None and self.process.poll() is None:
            assert self.endpoint is not None
            return self.endpoint
        attempts = 1 if self.base_port else 3
        for attempt in range(attempts):
            if self.base_port:
                busy = [p for p in range(self.base_port, self.base_port + 3) if not port_is_free(p)]
                if busy:
                    raise PortInUseError(
                        f"port {busy[0]} on {LOOPBACK} is already in use "
                        f"(the server needs {self.base_port}..{self.base_port + 2})",
                        hint="choose another --server-port, or omit it to pick free ports",
                    )
                base = self.base_port
            else:
                base = free_port_block(3)
            endpoint = Endpoint(LOOPBACK, base, base + 1, base + 2)
            try:
                self._spawn(endpoint)
                self._wait_ready()
                return endpoint
            except ServerStartError:
                tail = read_tail(self.log_path, 40)
                self._kill()
                if "Address already in use" in tail and attempt + 1 < attempts:
                    continue  # lost a port race with another process: pick new ports
                raise
        raise AssertionError("unreachable")

    def _spawn(self, endpoint: Endpoint) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the server writes to its own copy of the descriptor
            log.write(f"\n==== tritune: starting {' '.join(self.command(endpoint))}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command(endpoint),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.environment(),
                    cwd=str(self.log_path.parent),
                    start_new_session=True,
                    preexec_fn=_pdeathsig,
                )
            except OSError as exc:
                raise ServerStartError(f"cannot execute {self.install.binary}: {exc}") from exc
        self.endpoint = endpoint
        _ACTIVE.add(self)
        try:
            self._guard = spawn_guard(self.process.pid)  # start_new_session: pgid == pid
        except OSError as exc:
            self._kill()
            raise ServerStartError(f"cannot start the server's guard process: {exc}") from exc

    def _wait_ready(self) -> None:
        assert self.process is not None and self.endpoint is not None
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://{self.endpoint.host}:{self.endpoint.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerStartError(
                    f"tritonserver exited with code {code} during start-up (log: {self.log_path})",
                    log_tail=read_tail(self.log_path, 15),
                )
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise ServerStartError(
            f"tritonserver did not become ready within {self.startup_timeout_s:.0f} s (log: {self.log_path})",
            log_tail=read_tail(self.log_path, 15),
        )

    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """The process exit code once it has exited, else None."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log."""
        return read_tail(self.log_path, lines)

    def log_offset(self) -> int:
        """Current size of the log, to read only what the server writes after this point."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        """What the server logged after `offset` (see log_offset)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, graceful: bool = True) -> None:
        """Stop the server: SIGTERM, wait for its own exit timeout, then SIGKILL its group.
        Not graceful (a server that is broken anyway): SIGKILL at once."""
        proc = self.process
        if proc is None:
            _ACTIVE.discard(self)
            return
        if graceful and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=self.exit_timeout_s + 5)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        self._kill()

    def _kill(self) -> None:
        proc = self.process
        if proc is None:
            return
        try:
            # The python backend stubs are in the server's process group: take them too.
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        stop_guard(self._guard)  # after the group is dead: the guard has nothing left to do
        self._guard = None
        self.process = None
        _ACTIVE.discard(self)
