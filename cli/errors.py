"""The only place that knows exit codes: CimError subclasses -> one stderr line + exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from cim.errors import (
    AuthenticationRequired,
    CimError,
    ConfigError,
    DatabaseUnavailable,
    ImportFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TilingError,
)

T = TypeVar("T")

EXIT_CODES: dict[type[CimError], int] = {
    InvalidInput: 2,
    NotFound: 3,
    ImportFailed: 4,
    TilingError: 5,
    ConfigError: 6,
    DatabaseUnavailable: 7,
    PermissionDenied: 8,
    AuthenticationRequired: 8,
}


INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, as shells report it)."""


def exit_code_for(error: CimError) -> int:
    """Exit status for ``error``: the most specific class in :data:`EXIT_CODES`, else 1."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def run_guarded(entry: Callable[[], T]) -> T:
    """Run the CLI; a CimError becomes ``cim: error: ...`` on stderr and its exit code."""
    try:
        return entry()
    except CimError as error:
        print(f"cim: error: {error}", file=sys.stderr)
        raise SystemExit(exit_code_for(error)) from None
    except KeyboardInterrupt:
        print("cim: interrupted; nothing of an unfinished import was kept", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
