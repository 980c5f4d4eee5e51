"""Replace one file so that readers see the old content or the new, never half of either.

The one owner of single-file atomic writes: the device rewrites its bundle in place (`edgekit
build-engines` adds engines and updates manifest.json), `edgekit bench --out` replaces a report, and
`export` writes each manifest through it (export may import runtime; the runtime may not import
export, whose `export.atomic` stages whole directories). A temporary file in the same directory with
the umask's permissions (or the replaced file's), fsynced, renamed over the target, the directory
fsynced. An OSError (a full disk) leaves the target as it was and no temporary file; callers turn it
into their own one-line error.

    >>> write_json_atomic("bundle/manifest.json", manifest)      # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask (reading it means setting it: put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_path(path) -> None:
    """fsync a file or a directory by path (a directory's fsync makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path, data) -> None:
    """Replace `path` with `data` (bytes or any buffer, e.g. TensorRT's serialized engine) in one rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp's 0600 would hide the file from other users; a replaced file keeps its own mode
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~current_umask()
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def write_json_atomic(path, obj) -> None:
    """Replace a JSON file (indented, newline-terminated) in one rename."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())
