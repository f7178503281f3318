"""What an error message may show of data it did not write: short clips, no passwords.

A message that quotes a file (a CSV header, a YAML value) quotes at most a clip of it on one line,
so pointing mgrun at `/etc/passwd` or `/proc/self/environ` does not print them. A tracking URI is
shown with its password masked.
"""

from __future__ import annotations

from urllib.parse import urlsplit

QUOTE = 40  # characters of a file's content one message may quote


def clip(text: str, n: int = QUOTE) -> str:
    """At most `n` characters of `text`, control characters escaped, `...` when cut."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:n])
    return shown + ("..." if len(text) > n else "")


def quote(text: str, n: int = QUOTE) -> str:
    """`text` quoted as `repr` does, clipped to `n` characters (`'abc'...` when cut)."""
    return repr(text[:n]) + ("..." if len(text) > n else "")


def mask_uri(uri: str) -> str:
    """`uri` with the password of its user info replaced by `***`; other URIs unchanged."""
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:  # not a URL at all: nothing we can tell apart as a password
        return uri
    user, at, host = netloc.rpartition("@")
    if not at or ":" not in user:
        return uri
    masked = f"{user.split(':', 1)[0]}:***@{host}"
    return uri.replace(netloc, masked, 1)
