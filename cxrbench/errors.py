"""How the command line answers an error: one line on stderr and a documented exit code.

Exit codes (``docs/errors.md`` lists the catalogue of bad inputs and their messages):

====  ============================================================================================
0     success
1     the command ran and the answer is "no": ``data check`` found problems, ``leaderboard --check``
      found stale tables, some jobs of a sweep failed, training stopped on a non-finite loss
2     user error: a bad option value, a missing / malformed / unreadable file or folder, an unknown
      name, a record that already exists, a folder that cannot be written, a full disk
3     internal error (a bug): the message names the exception; ``--debug`` shows the traceback
130   interrupted (Ctrl-C)
====  ============================================================================================

Tracebacks are printed only with the global ``--debug`` option (``cxrbench --debug run ...``) or
``CXRBENCH_DEBUG=1``.
"""

from __future__ import annotations

import errno
import os

__all__ = ["EXIT_INTERNAL", "EXIT_PROBLEMS", "EXIT_USER", "UserError", "debug_enabled", "describe_error",
           "enable_debug", "one_line"]

EXIT_PROBLEMS = 1
EXIT_USER = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

_DEBUG_ENV = "CXRBENCH_DEBUG"

#: OSError numbers that are the user's environment (full disk, read-only or forbidden folder), not a bug.
_FILESYSTEM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class UserError(ValueError):
    """A bad input the user can fix; the message (one line) names the option, file or value."""


def enable_debug() -> None:
    """``--debug``: show tracebacks (for this process and the processes it starts)."""
    os.environ[_DEBUG_ENV] = "1"


def debug_enabled() -> bool:
    return os.environ.get(_DEBUG_ENV, "") not in ("", "0")


def one_line(text: str) -> str:
    """``text`` on one line (line breaks become ``; ``)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that are user errors (imported lazily: the CLI starts fast)."""
    from cxrbench.data.base import DataProblemError, DatasetLayoutError
    from cxrbench.data.images import ImageReadError
    from cxrbench.data.preflight import PreflightError
    from cxrbench.data.rle import RLEError

    types: list[type[BaseException]] = [
        UserError, DatasetLayoutError, DataProblemError, ImageReadError, PreflightError, RLEError,
        FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
        KeyError, ValueError,
    ]
    for module, name in (("cxrbench.models.base", "UnsupportedSetting"), ("medslip.text", "TextEncoderUnavailable"),
                         ("medslip.checkpoint", "CheckpointMismatch"),
                         ("baselines.clip.model", "TextTowerUnavailable"), ("cxrbench.prep", "PrepError")):
        try:
            types.append(getattr(__import__(module, fromlist=[name]), name))
        except Exception:  # noqa: BLE001 - an optional part that does not import is simply not listed
            continue
    return tuple(types)


def describe_error(err: BaseException) -> tuple[int, str]:
    """``(exit code, one-line message)`` for an exception that reached the command line."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(err, OSError) and err.errno in _FILESYSTEM and not isinstance(err, FileNotFoundError):
        where = err.filename or ""
        detail = os.strerror(err.errno)
        return EXIT_USER, one_line(f"{where}: {detail}" if where else f"{detail} ({err})")
    if isinstance(err, _user_error_types()):
        if isinstance(err, KeyError) and err.args:
            return EXIT_USER, one_line(str(err.args[0]))
        if isinstance(err, OSError) and err.errno is not None and err.filename:
            return EXIT_USER, one_line(f"{err.filename}: {err.strerror or err}")
        return EXIT_USER, one_line(str(err))
    return EXIT_INTERNAL, one_line(f"internal error: {type(err).__name__}: {err} (rerun with `cxrbench --debug "
                                   "...` for the traceback, and please report it)")
