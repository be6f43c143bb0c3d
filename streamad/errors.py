"""Error text helpers shared by every layer (no imports from the rest of the package)."""
from __future__ import annotations


def first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, at most ``limit`` characters; the exception's
    type name when it has no message (``EOFError()``, ``KeyError()``), so that a one-line error
    built from it never loses its reason, nor fails itself."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


def described(e: BaseException, limit: int = 160) -> str:
    """``"<type>: <first line of its message>"`` (just the type name when it has no message): an
    unexpected exception named in a one-line error or a dead letter's reason."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:limit]}" if text else type(e).__name__
