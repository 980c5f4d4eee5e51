"""Write a directory so that readers see all of it or none of it.

A bundle is built in a staging directory beside the destination (same filesystem), every file and the
directory are fsynced, then it is renamed into place. A crash or kill midway leaves only a hidden
`.NAME.tmp-PID-*` beside OUT (removed by the next export once PID is gone), never a half bundle at
OUT. Replacing an existing bundle (`force`) swaps the two directories in one `renameat2(RENAME_EXCHANGE)`
on Linux, so OUT always holds a complete bundle; elsewhere it falls back to two renames.

Without `force` the publish never replaces anything: `renameat2(RENAME_NOREPLACE)` (elsewhere a plain
rename, which a non-empty directory refuses) fails if OUT appeared meanwhile, and the export is
refused as if OUT had existed from the start. Two exports to the same OUT are kept apart earlier by a
lock file `.NAME.lock` beside OUT (`flock`, released by the kernel if the holder dies), held from the
destination check to the publish (`claim`): the second is refused in one line before it loads anything.

A write that fails (a full disk or quota, an I/O error, a read-only or forbidden folder) removes the
staging directory and is raised as `BundleWriteError`, one line naming OUT and the fix.

    >>> with staged_dir("out/bundle", force=False) as tmp:      # doctest: +SKIP
    ...     (tmp / "manifest.json").write_text("{}")
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edge.core.errors import BadInputError, EdgekitError
from runtime.atomic import current_umask, fsync_path
from runtime.atomic import write_json_atomic as runtime_write_json_atomic

_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
# What a user fixes on their side (space, quota, the disk, permissions); other OSErrors are bugs.
WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EFBIG: "the file is too large for that disk", errno.EIO: "an I/O error on the disk",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted"}


class BundleWriteError(EdgekitError):
    """Writing a bundle (or a file in one) failed on the user's side: space, quota, disk or permissions."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.errno = errno_


def _fix(code: int | None, flag: str) -> str:
    other = f"pass a {flag} on another disk" if flag else "write it on another disk"
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"free space on that disk (or {other}) and run again"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"pass a {flag} in a folder you can write to" if flag else "make it writable") + " and run again"
    return f"check that disk (dmesg), or {other}, and run again"


def write_error(exc: BaseException, target, flag: str = "--out") -> BundleWriteError:
    """One line for a failed write of `target` (the path the user named), with the fix.

    `exc` is the OSError (or a `BundleWriteError` from a nested write, re-said for `target`); a file
    named by the OSError outside `target` (a temp file elsewhere) is named too.
    """
    code = getattr(exc, "errno", None)
    why = WRITE_ERRNOS.get(code) or getattr(exc, "strerror", None) or type(exc).__name__
    name = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and name and Path(target).absolute().parent not in Path(name).absolute().parents:
        why += f" (writing {name})"
    what = f"{flag} {target}" if flag else str(target)
    done = "nothing was written there" if flag else "the file was left as it was"
    return BundleWriteError(f"cannot write {what}: {why} (errno {code}); {done}; {_fix(code, flag)}", code)


def _is_user_write_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under `root` (data first, then the names)."""
    for d, _, files in os.walk(root):
        for f in files:
            fsync_path(Path(d) / f)
        fsync_path(Path(d))


def write_json_atomic(path, obj) -> None:
    """Replace a JSON file in one rename (temp file in the same directory, fsynced).

    A full disk (or another `WRITE_ERRNOS` failure) leaves the old file as it was, removes the temp
    file and raises `BundleWriteError` naming `path`.
    """
    path = Path(path)
    try:
        runtime_write_json_atomic(path, obj)
    except OSError as exc:
        if not _is_user_write_error(exc):
            raise
        raise write_error(exc, path, flag="") from None


def _renameat2(a: Path, b: Path, flags: int) -> bool:
    """Linux renameat2(a, b, flags): True once done, False where the call or the flag is unavailable
    (not Linux, an old kernel, a file system without it); any other failure raises its OSError."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(b))


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


def _exists_error(out: Path, meanwhile: bool = False) -> BadInputError:
    when = " (another export published it meanwhile)" if meanwhile else ""
    return BadInputError(f"--out {out} exists and is not empty{when}; pass --force to replace it, or choose "
                         f"another --out")


def check_destination(out, force: bool) -> Path:
    """Refuse a non-empty destination unless `force` (before any work is done)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out} is a file, not a directory; choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise _exists_error(out)
    return out


def lock_path(out) -> Path:
    """The lock file an export of `out` holds: `.NAME.lock` beside it."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


_HELD: dict[Path, int] = {}          # lock file -> fd, for the destinations this process holds


def _acquire(lock: Path, out: Path) -> int:
    """flock `lock` without waiting; refuse in one line while another process holds it."""
    import fcntl

    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise BadInputError(f"--out {out} is being written by another export{pid}; wait for it to "
                                f"finish (then pass --force to replace its bundle) or choose another "
                                f"--out") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)                 # its holder removed it between our open and our lock: retry
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except BaseException:
        _release(lock, fd)
        raise
    return fd


def _release(lock: Path, fd: int) -> None:
    """Remove the lock file while still holding it (so no one locks a file that is gone), then unlock."""
    try:
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


@contextmanager
def claim(out, force: bool = False):
    """Hold `out`'s lock for the whole export and check the destination under it; yields `out` absolute.

    Re-entrant within one process (`export_bundle` claims before loading, `staged_dir` again before
    writing). A second export of the same `out` is refused while the first holds it.
    """
    out = check_destination(out, force).absolute()
    lock = lock_path(out)
    if lock in _HELD:
        yield out
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(lock, out)
    except OSError as exc:
        if not _is_user_write_error(exc):
            raise
        raise write_error(exc, out) from None
    _HELD[lock] = fd
    try:
        check_destination(out, force)     # again, under the lock: another export may have finished
        yield out
    finally:
        del _HELD[lock]
        _release(lock, fd)


@contextmanager
def staged_dir(out, force: bool = False):
    """Yield a staging directory; on success publish it at `out` atomically, on error remove it.

    A failed write (`WRITE_ERRNOS`: full disk, quota, I/O, read-only, permissions) anywhere in the
    body, the fsync or the publish is raised as `BundleWriteError` naming `out`.
    """
    with claim(out, force) as dest:
        try:
            _remove_stale(dest)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
        except OSError as exc:
            if not _is_user_write_error(exc):
                raise
            raise write_error(exc, dest) from None
        try:
            os.chmod(tmp, 0o777 & ~current_umask())
            yield tmp
            fsync_tree(tmp)
            publish(tmp, dest, force)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if _is_user_write_error(exc) or isinstance(exc, BundleWriteError):
                raise write_error(exc, dest) from None
            raise


def publish(tmp: Path, out: Path, force: bool = False) -> None:
    """Move a finished staging directory to `out`; with `force` swap out what is there, else never
    replace anything (a bundle that appeared at `out` meanwhile is refused, as if it had been there)."""
    if out.is_dir() and not any(out.iterdir()):
        try:
            out.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or force:
                raise
            raise _exists_error(out, meanwhile=True) from None
    if force and out.exists():
        if _renameat2(tmp, out, _RENAME_EXCHANGE):
            shutil.rmtree(tmp)  # now holds the old bundle
        else:                   # no atomic swap here: OUT is briefly absent between the two renames
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old)
    else:
        try:
            if not _renameat2(tmp, out, _RENAME_NOREPLACE):
                os.rename(tmp, out)     # a plain rename refuses a non-empty directory or a file at OUT
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise
            raise _exists_error(out, meanwhile=True) from None
    fsync_path(out.parent)
