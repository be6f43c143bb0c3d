"""Error text helpers shared by every layer (no imports from the rest of the package)."""
from __future__ import annotations


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, at most ``limit`` characters; the exception's
    type name when it has no message (``EOFError()``, ``KeyError()``), so that a one-line error
    built from it never loses its reason, nor fails itself."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__
