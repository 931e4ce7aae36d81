"""Locate a `tritonserver` installation and build the private backend directory it needs.

Search order: an explicit path, then `PATH`, then the binary shipped inside the installed
`nvidia-pytriton` wheel. Nothing in site-packages or the user's repository is modified: the
python backend is assembled from symlinks in a private cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.errors import ServerNotFoundError
from analyzer.textfile import user_path

INSTALL_HINT = (
    "install the bundled server with `pip install 'tritune[server]'` (it ships in the "
    "nvidia-pytriton wheel), put `tritonserver` on PATH, or pass --triton-server-path"
)


@dataclass(frozen=True)
class TritonInstall:
    """Where a tritonserver binary lives and what it needs to run."""

    binary: Path
    library_dirs: tuple[Path, ...] = field(default=())
    # Directory holding backends (``<dir>/python/libtriton_python.so``); None = server default.
    backend_dir: Path | None = None


def _pytriton_root() -> Path | None:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _install_from_pytriton(root: Path) -> TritonInstall | None:
    binary = root / "tritonserver" / "bin" / "tritonserver"
    if not binary.is_file():
        return None
    libs = root.parent / "nvidia_pytriton.libs"
    backend = build_python_backend_dir(root / "tritonserver")
    return TritonInstall(binary=binary, library_dirs=(libs,) if libs.is_dir() else (), backend_dir=backend)


def _install_from_binary(binary: Path) -> TritonInstall:
    # A binary from the pytriton wheel found through PATH or an explicit path still needs the
    # wheel's libraries and a private backend dir; a system install (NGC container) needs neither.
    resolved = binary.resolve()
    for parent in resolved.parents:
        if parent.name == "pytriton" and (parent / "tritonserver").is_dir():
            found = _install_from_pytriton(parent)
            if found is not None:
                return TritonInstall(found.binary, found.library_dirs, found.backend_dir)
    return TritonInstall(binary=resolved)


def find_tritonserver(
    explicit: str | os.PathLike[str] | None = None,
    *,
    search_path: str | None = None,
    use_pytriton: bool = True,
) -> TritonInstall:
    """Find tritonserver: explicit path, then PATH (or `search_path`), then the nvidia-pytriton
    wheel (unless `use_pytriton` is False).

    Raises ServerNotFoundError naming every place looked at and how to get a server.
    """
    looked: list[str] = []
    if explicit:
        path = user_path(explicit)
        if path.is_dir():
            path = path / "tritonserver"
        if path.is_file() and os.access(path, os.X_OK):
            return _install_from_binary(path)
        raise ServerNotFoundError(
            f"--triton-server-path {explicit}: no executable tritonserver there", hint=INSTALL_HINT
        )
    on_path = shutil.which("tritonserver", path=search_path)
    if on_path:
        return _install_from_binary(Path(on_path))
    looked.append("PATH")
    root = _pytriton_root() if use_pytriton else None
    if not use_pytriton:
        looked.append("the nvidia-pytriton package (not searched)")
    elif root is not None:
        found = _install_from_pytriton(root)
        if found is not None:
            return found
        looked.append(f"the nvidia-pytriton package at {root} (no tritonserver binary inside)")
    else:
        looked.append("the nvidia-pytriton package (not installed)")
    raise ServerNotFoundError("tritonserver not found; looked in " + ", ".join(looked), hint=INSTALL_HINT)


def cache_dir() -> Path:
    """The per-user cache directory for tritune's private files."""
    base = os.environ.get("TRITUNE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tritune"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_python_backend_dir(server_root: Path, dest_root: Path | None = None) -> Path:
    """Assemble a backend directory for the python backend of a pytriton-style install.

    The python backend stub must sit beside ``libtriton_python.so``; the wheel keeps one stub per
    Python version elsewhere, so we link the library, its utils module and the stub matching the
    running interpreter into ``<cache>/backends-<ver>/python``. Returns the backends directory.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    source = server_root / "backends" / "python"
    stub = server_root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not (source / "libtriton_python.so").is_file():
        raise ServerNotFoundError(f"python backend missing under {source}", hint=INSTALL_HINT)
    if not stub.is_file():
        raise ServerNotFoundError(
            f"no python backend stub for Python {version} under {stub.parent.parent}",
            hint="run tritune with a Python version the installed nvidia-pytriton supports",
        )
    # Key the directory by the install location so two environments never share one.
    key = hashlib.sha1(str(server_root.resolve()).encode()).hexdigest()[:10]
    backends = (dest_root or cache_dir()) / f"backends-py{version}-{key}"
    target = backends / "python"
    target.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": source / "libtriton_python.so",
        "triton_python_backend_utils.py": source / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    for name, src in links.items():
        link = target / name
        if link.is_symlink() and Path(os.readlink(link)) == src:
            continue
        tmp = target / f".{name}.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(src)
        os.replace(tmp, link)  # atomic, so concurrent launches never see a missing link
    return backends
