"""Files that hold what the service received: opened for appending, never readable by all.

The prediction log and the feedback file hold the inputs and labels of real requests. A file
created with the process's umask (often 022) is readable by every account on the host.
"""

from __future__ import annotations

import os
import stat
from io import BufferedWriter
from pathlib import Path

# Owner reads and writes, the group reads (a log shipper's group), nobody else.
PRIVATE_MODE = 0o640


def open_private_append(path: Path) -> BufferedWriter:
    """``path`` opened for appending bytes, created with at most ``PRIVATE_MODE``.

    The umask can only take bits away from the mode given at creation, so a new file is never
    more open than ``PRIVATE_MODE``; an existing file (e.g. written by an earlier version) is
    narrowed to it, never widened.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    handle = os.fdopen(os.open(path, flags, PRIVATE_MODE), "ab")
    try:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & ~PRIVATE_MODE:
            os.fchmod(handle.fileno(), mode & PRIVATE_MODE)
    except OSError:
        handle.close()
        raise
    return handle


def narrow_to_private(path: Path) -> None:
    """Take from ``path``'s mode what ``PRIVATE_MODE`` does not allow (rotated backups)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~PRIVATE_MODE:
        path.chmod(mode & PRIVATE_MODE)
