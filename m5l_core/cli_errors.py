"""How every command-line tool ends on a user's mistake or on Ctrl-C.

A bad file, option or data set is one ``error:`` line on stderr that names what was wrong (the
exceptions carry the file, field or option), exit status 2 and no traceback; Ctrl-C exits with
130 after a line saying what was kept. A bug still raises with its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# What a Ctrl-C leaves behind, per kind of tool.
RESUME_FROM_CHECKPOINT = "interrupted: resume with --resume (the last checkpoint is intact)"
RERUN_TO_CONTINUE = "interrupted: finished sequences are kept; rerun the same command to continue"


def run_cli(body: Callable[[], int], user_errors: tuple[type[BaseException], ...],
            interrupted: str = "interrupted") -> int:
    """``body()``'s exit status; ``user_errors`` become ``error: ...`` and status 2."""
    try:
        return body()
    except user_errors as err:
        print(f"error: {error_text(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def error_text(err: BaseException) -> str:
    """An operating-system error as ``<file>: <reason>`` (its own text puts the errno first and the
    file last); every other error's own message, which names the file, field or option."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err)
