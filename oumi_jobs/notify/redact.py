"""URLs as they are shown: credentials out.

A notification URL often carries its secret (a password, a webhook token in
its path, a key in its query).  It is stored as given, for the sender, and
shown everywhere (lists, JSON, REST, errors) through :func:`shown`, which
needs no Apprise: the sender refines it with Apprise's own privacy form when
it has loaded Apprise anyway.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "****"
# Query keys whose values are secrets.
_SECRET_KEYS = re.compile(r"(token|key|secret|pass|auth|sig|signature|password|pwd|webhook)", re.IGNORECASE)
# A path segment (or an Apprise URL's host) that reads like a token: long, with a digit in it.
_TOKEN = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-.:=+]{8,}$")
PLAIN_SCHEMES = ("http", "https")


def shown(url: str) -> str:
    """``url`` with its password, token-like path segments and secret query values masked."""
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.netloc.rpartition("@")[2]  # as written: hostname would lowercase a token
        host = host.removesuffix(f":{port}") if port is not None else host
    except ValueError:
        return _mask_all(url)
    plain = parts.scheme.lower() in PLAIN_SCHEMES
    user = parts.username
    if user is not None and (parts.password is not None or not plain):
        user = f"{user}:{MASK}" if parts.password is not None or _TOKEN.match(user) else user
    if not plain and "." not in host and _TOKEN.match(host):  # a host name or address is no token
        host = _token(host)
    netloc = host + (f":{port}" if port is not None else "")
    if user is not None:
        netloc = f"{user}@{netloc}"
    path = "/".join(_token(segment) if _TOKEN.match(segment) else segment for segment in parts.path.split("/"))
    query = urlencode(
        [(key, MASK if _SECRET_KEYS.search(key) else value) for key, value in parse_qsl(parts.query, True)], safe="*"
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def scrub(text: str, url: str) -> str:
    """``text`` (an error) with ``url`` and its password replaced by what :func:`shown` shows."""
    cleaned = text.replace(url, shown(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return cleaned.replace(password, MASK) if password else cleaned


def _token(segment: str) -> str:
    return segment[:2] + MASK


def _mask_all(url: str) -> str:
    scheme, _, _ = url.partition("://")
    return f"{scheme}://{MASK}"
