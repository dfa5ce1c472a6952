"""Connection URLs as they may be printed: the password never is.

>>> masked("redis://driftline:s3cret@127.0.0.1:6379/0"), masked("kafka:9092"), masked(None)
('redis://driftline:***@127.0.0.1:6379/0', 'kafka:9092', '')
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def masked(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (empty for None)."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}"))
