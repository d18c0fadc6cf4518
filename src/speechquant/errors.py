"""User-facing errors: one clear line and a non-zero exit instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix (bad params, missing data or credentials); never a bug."""


def exit_on_user_error(main: Callable[[], None]) -> None:
    """Run a stage's main; a UserError becomes ``error: ...`` on stderr and exit status 2."""
    try:
        main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
