"""Exception types shared across the package.

User-facing errors name the argument, the rule and the value, e.g.
``expected `num_groups` >= 2, got 1``. They subclass ``ValueError`` so callers that catch the
built-in keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MultiFairError(ValueError):
    """A bad input or configuration reported to the user with a clear message."""


def close_match_hint(value: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``."""
    match = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
