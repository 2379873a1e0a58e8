"""Reading the operator's files (spec, inventory): regular files only, of a bounded size.

A FIFO, a device or a socket given as a spec or an inventory would block the read forever (a FIFO
with no writer) or never end (/dev/zero); such a path is refused at once, naming what it is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

MAX_CONFIG_BYTES: Final = 8 * 1024 * 1024
"""Far above any spec or inventory (a 1,000-node inventory is ~200 kB)."""


class ConfigFileError(ValueError):
    """A file that cannot be read as the operator's config; the message says why (not the path)."""


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO (named pipe)", "a directory", ...)."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_text(path: Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of the regular file `path`. Raises ConfigFileError for anything else.

    The file is opened non-blocking (opening a FIFO without a writer would otherwise wait) and
    checked with fstat on the open descriptor, so a path swapped after a check cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigFileError(exc.strerror or str(exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConfigFileError(f"{file_kind(mode)}, not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise ConfigFileError(exc.strerror or str(exc)) from None
    if len(data) > limit:
        raise ConfigFileError(f"larger than {limit // (1024 * 1024)} MB; not a spec or inventory")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"not UTF-8 text ({exc.reason})") from None
