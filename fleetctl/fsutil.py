"""Files fleetctl writes (a saved plan, the inventory schema, the health textfile, the
HTML report) are written atomically: a reader, or the next fleetctl, sees the old file
or the new one, never half of one, whenever the process dies.

The new content goes to a temporary file in the same directory (so the rename stays on
one file system), is flushed and fsynced, takes the old file's permissions (a new file
gets what a plain `open(path, "w")` would give it under the umask), and replaces the
old file with `os.replace`; the directory is fsynced so that the rename survives a
power cut. On any failure the temporary file is removed and the old file is untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", mode: int | None = None
) -> None:
    """Write `text` to `path` atomically (see the module doc)."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None
) -> None:
    """Write `data` to `path` atomically; `mode` (e.g. 0o600) overrides the permissions
    it would otherwise keep or get. Missing parent directories are created."""
    target = Path(path)
    if target.is_symlink():  # replace what the link points to, and keep the link
        target = Path(os.path.realpath(target))
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    try:
        old = target.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = _create_temporary(directory, target.name)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            elif old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if (old.st_uid, old.st_gid) != _owner(fd):
                    # Only root may give a file away; anyone else keeps their own.
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, old.st_uid, old.st_gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _create_temporary(directory: Path, name: str) -> tuple[int, str]:
    """A new file beside the target, created with 0o666 so that the umask applies as it
    would to the file itself. Hidden, and not ending in the target's suffix, so that a
    reader globbing for `*.prom` or `*.json` never picks it up."""
    for _ in range(100):
        tmp = str(directory / f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {directory / name}")


def _owner(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_uid, st.st_gid


def _fsync_directory(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # a directory that cannot be opened for reading: the rename is done
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on directories
            os.fsync(dfd)
    finally:
        os.close(dfd)
