"""Removing secrets from text bound for a log line.

Covered: SAS signatures (``sig=...``), ``Authorization`` headers, bearer tokens
and any JWT, storage account keys and shared access keys in connection strings,
passwords in URLs (``scheme://user:password@host``), and ``password=``/
``client_secret=`` style pairs; and every value registered with :func:`register_secret`
(settings resolved from Key Vault, settings declared secret), whatever it looks like.
"""

from __future__ import annotations

import re

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # An Authorization header, as text or in a dict's repr: hide everything after it.
    (re.compile(r"""(?i)(authorization['"]?\s*[:=]\s*['"]?)[^'"\r\n,}]+"""), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{16,}"), rf"\g<1>{MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),  # any JWT
    (re.compile(r"(?i)([?&;]|\b)(sig=)[^&\s'\";]+"), rf"\g<1>\g<2>{MASK}"),
    (re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature)=[^;\s'\"]+"),
     rf"\g<1>={MASK}"),
    (re.compile(r"(?i)\b(password|passwd|pwd|client_secret|secret)=[^&;\s'\"]+"),
     rf"\g<1>={MASK}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*):[^@\s/'\"]+@"), rf"\g<1>:{MASK}@"),
)
_HINTS = ("uthorization", "earer", "eyJ", "sig=", "ccountKey", "ccessKey", "ccessSignature",
          "assw", "pwd=", "ecret", "@")


MIN_KNOWN_SECRET = 8
"""Shorter values are not registered: masking them would garble ordinary text."""
_known: tuple[str, ...] = ()
"""Longest first, so a secret that contains a shorter one is masked whole."""


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears from now on (a Key Vault secret, a connection
    string): whatever its shape, it never reaches a log line."""
    global _known
    if len(value) >= MIN_KNOWN_SECRET and value not in _known:
        _known = tuple(sorted((*_known, value), key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``***``."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    if not any(hint in text for hint in _HINTS):
        return text  # the common case: one cheap scan, no regex
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
