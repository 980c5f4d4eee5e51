"""Write a directory so that readers see all of it or none of it.

A bundle is built in a staging directory beside the destination (same filesystem), every file and the
directory are fsynced, then it is renamed into place. A crash or kill midway leaves only a hidden
`.NAME.tmp-PID-*` beside OUT (removed by the next export once PID is gone), never a half bundle at
OUT. Replacing an existing bundle (`force`) swaps the two directories in one `renameat2(RENAME_EXCHANGE)`
on Linux, so OUT always holds a complete bundle; elsewhere it falls back to two renames.

    >>> with staged_dir("out/bundle", force=False) as tmp:      # doctest: +SKIP
    ...     (tmp / "manifest.json").write_text("{}")
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edge.errors import BadInputError

_RENAME_EXCHANGE = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root` (data first, then the names)."""
    for d, _, files in os.walk(root):
        for f in files:
            _fsync(Path(d) / f)
        _fsync(Path(d))


def write_json_atomic(path, obj) -> None:
    """Replace a JSON file in one rename (temp file in the same directory, fsynced)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the bundle from other users
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the call is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _remove_stale(out: Path) -> None:
    """Staging directories of exports whose process is gone (killed midway)."""
    for p in out.parent.glob(f".{out.name}.tmp-*"):
        try:
            pid = int(p.name.split(".tmp-")[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


def check_destination(out, force: bool) -> Path:
    """Refuse a non-empty destination unless `force` (before any work is done)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file, not a directory; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BadInputError(f"--out {out} exists and is not empty; pass --force to replace it")
    return out


@contextmanager
def staged_dir(out, force: bool = False):
    """Yield a staging directory; on success publish it at `out` atomically, on error remove it."""
    out = check_destination(out, force).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        fsync_tree(tmp)
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, out: Path) -> None:
    """Move a finished staging directory to `out`, replacing (swapping out) what is there."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp)  # now holds the old bundle
    else:
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    _fsync(out.parent)
