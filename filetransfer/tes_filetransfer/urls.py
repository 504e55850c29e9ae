"""URL helpers: scheme detection, joining, and redaction of secrets for messages and logs."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

# Schemes whose URL paths are percent-encoded, so appended path parts must be quoted too.
_QUOTED_SCHEMES = frozenset({"http", "https", "file"})

# Characters kept as they are when quoting a path part for an URL.
_SAFE_PATH_CHARS = "/~!$&'()*+,;=:@"

# Schemes whose "user" part is not a credential but the container (az://<container>@<account>).
_CONTAINER_AT_ACCOUNT_SCHEMES = frozenset({"az", "abfs", "abfss"})

_QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>)\]]*")
_USERINFO_IN_TEXT = re.compile(r"(?<=//)[^/\s@'\"]+@")


def url_scheme(url: str) -> str:
    """Return the lower-case scheme of ``url``; ``""`` for a plain path such as ``/x/y``."""
    if url.startswith("/"):
        return ""
    scheme = urlsplit(url).scheme.lower()
    # "C:/x" style paths would parse as scheme "c"; this package treats them as no URL at all.
    return scheme if len(scheme) > 1 else ""


def redact_url(url: str) -> str:
    """Return ``url`` without its query string, fragment and ``user:password@`` part.

    Use it for every URL that goes into a message or a log line: query strings often hold
    signed tokens (S3 presigned URLs, Azure SAS ``?sig=...``).
    """
    if not url:
        return url
    if "@" not in url and "#" not in url:  # the common case, without parsing (hot path)
        return url.split("?", 1)[0]
    if url_scheme(url) == "":
        # A plain path: nothing secret in it but an odd "?" still gets dropped.
        return url.split("?", 1)[0].split("#", 1)[0]
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub_text(url)
    netloc = parts.netloc
    if parts.scheme.lower() not in _CONTAINER_AT_ACCOUNT_SCHEMES:
        netloc = netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub_text(text: str) -> str:
    """Remove anything that looks like a query string or URL credentials from free text.

    Used on messages of third-party exceptions (requests puts the full URL in them).
    """
    text = _USERINFO_IN_TEXT.sub("", text)
    return _QUERY_IN_TEXT.sub("", text)


def join_url(base: str, relative: str) -> str:
    """Append the path ``relative`` to ``base`` with exactly one ``/`` between them.

    The query string of ``base`` (a token, for example) is kept at the end of the result.
    For http(s) and file URLs the appended part is percent-encoded; plain paths and other
    schemes get it as is.
    """
    relative = relative.lstrip("/")
    if not relative:
        return base
    scheme = url_scheme(base)
    if scheme == "":
        return base.rstrip("/") + "/" + relative
    parts = urlsplit(base)
    if scheme in _QUOTED_SCHEMES:
        relative = quote(relative, safe=_SAFE_PATH_CHARS)
    path = parts.path.rstrip("/") + "/" + relative
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
