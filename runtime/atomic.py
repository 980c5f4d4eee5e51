"""Replace one file so that readers see the old content or the new, never half of either.

The device rewrites its bundle in place (`edgekit build-engines` adds engines and updates
manifest.json), and a Jetson loses power mid-write more often than a workstation. The runtime may not
import `export/` (whose `export.atomic` stages whole directories), so this is the device-side helper:
a temporary file in the same directory, fsynced, renamed over the target, and the directory fsynced.

    >>> write_json_atomic("bundle/manifest.json", manifest)      # doctest: +SKIP
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path, data) -> None:
    """Replace `path` with `data` (bytes or any buffer, e.g. TensorRT's serialized engine) in one rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path, obj) -> None:
    """Replace a JSON file (indented, newline-terminated) in one rename."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())
