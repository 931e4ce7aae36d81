"""A shared study's database URL as tritune shows it: never with its password. Every message,
log line and file that names the URL goes through `redact`; text from elsewhere that may quote
it (a driver's error) goes through `scrub`. The URL itself can come from the environment
(`STORAGE_ENV`), so that it need not be on a command line that `ps` and pod specs show."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url

STORAGE_ENV = "TRITUNE_STORAGE"  # read by click (envvar=) for sweep, report and dash
UNPARSABLE = "<the --storage URL, which cannot be parsed>"
# user:password@ after the scheme, for URLs SQLAlchemy cannot parse (a bad port, say).
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@]*:)[^@]*@")


def redact(url: str) -> str:
    """The URL with its password as ***, for messages; a URL that cannot be parsed shows only
    as far as it safely can (its password still hidden)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any form SQLAlchemy rejects
        if _USERINFO.match(url):
            return _USERINFO.sub(r"\g<head>***@", url)
        return UNPARSABLE


def password_of(url: str) -> str | None:
    """The URL's password (None when it has none or cannot be parsed)."""
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - as above: any form SQLAlchemy rejects
        match = re.match(r"^[A-Za-z][\w+.-]*://[^:/@]*:(?P<pw>[^@]*)@", url)
        password = match.group("pw") if match else None
    return str(password) if password else None


def scrub(text: str, url: str) -> str:
    """`text` (an error message from a driver or SQLAlchemy) with the URL and its password
    replaced by their redacted forms."""
    text = text.replace(url, redact(url))
    password = password_of(url)
    return text.replace(password, "***") if password else text
