"""Files flopdispatch writes (reports, pages): replaced whole, never left truncated."""
from __future__ import annotations

import os
import tempfile


def atomic_write(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that a crash, Ctrl-C or kill at any point leaves the
    old file or the new one, never a truncated one: a temporary file beside the target, flushed and
    fsynced, renamed into place with ``os.replace`` (the old file's permissions kept). A target
    that is not a regular file (``/dev/stdout``, a pipe) is written directly."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/stdout, a pipe: nothing to replace
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


__all__ = ["atomic_write"]
