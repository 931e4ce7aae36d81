"""Model and study names, checked before anything is written or sent.

A model name is the name of a directory in a Triton model repository, and tritune names its run
directory after it (`<out>/<model>-<time>/`; a shared study's `<out>/<model>-<study>/`), so a
name must be exactly one path component that stays where it is put. The rule, Triton's own
(its core's ValidateModelName refuses an empty name and any name with '/' or '..' since the
fixes against path traversal, 2025), tightened where a directory name could still misbehave:

- not empty, and not only whitespace;
- no '/' and no '\\' (a path separator on some system), no '..' anywhere, and not '.';
- no control characters (NUL and the other ASCII controls, which no file system or terminal
  handles alike);
- at most MAX_NAME_BYTES bytes of UTF-8 (a file name is at most 255 on Linux; the run
  directory's name adds a time stamp).

A study name (`--study`) names a directory the same way, so it follows the same rule.
"""

from __future__ import annotations

from analyzer.limits import MAX_NAME_BYTES


def name_problem(name: object) -> str:
    """Why `name` cannot be a model (or study) name, in words ('' when it can)."""
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not name.strip():
        return "it is empty"
    if name in (".", ".."):
        return f"it is {name!r}"
    if "/" in name:
        return "it has a '/'"
    if "\\" in name:
        return "it has a '\\'"
    if ".." in name:
        return "it has '..'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "it has a control character"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long; the limit is {MAX_NAME_BYTES}"
    return ""


RULE = (
    "a name is one directory name: not empty, no '/', '\\' or '..', no control characters, at most "
    f"{MAX_NAME_BYTES} bytes"
)


def bad_name(name: object, kind: str = "model") -> str:
    """'' for a good name, else `'NAME' is not a KIND name: why` (for a message)."""
    problem = name_problem(name)
    return f"{name!r} is not a {kind} name: {problem}" if problem else ""


def check_name(name: str, kind: str, option: str) -> None:
    """Raise UsageError (exit 2) naming `option` when `name` is not a good `kind` name."""
    from analyzer.errors import UsageError

    if bad_name(name, kind):
        raise UsageError(f"{option}: {bad_name(name, kind)}", hint=RULE)
