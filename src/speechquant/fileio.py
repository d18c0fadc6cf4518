"""Atomic writes: a killed stage leaves the old output or the new one, never half of one."""

from __future__ import annotations

import csv
import ctypes
import errno
import glob
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from speechquant.errors import UserError


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's files and entries, to disk before it is published."""
    if path.is_dir():
        for child in path.iterdir():
            _fsync(child)
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    else:
        flags = os.O_RDONLY
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15): swap two paths in one step
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    return result == 0


def publish(temporary: Path, target: Path, scratch: Path) -> None:
    """Put ``temporary`` at ``target`` so that every moment ``target`` holds an old or new whole copy.

    A file replaces a file with ``os.replace`` (atomic on POSIX). A folder cannot be
    replaced by a rename while the old one exists, so the two are exchanged in one
    ``renameat2`` call; where that is unavailable the old folder is first moved into
    ``scratch`` (a crash between the two renames then leaves it there, not lost).
    """
    _fsync(temporary)
    if target.is_dir() and not target.is_symlink():
        if not _exchange(temporary, target):
            os.replace(target, scratch / "old")
            os.replace(temporary, target)
    else:
        os.replace(temporary, target)
    _fsync(target.parent)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it into place only if the block succeeds.

    Works for a file or a directory: the caller creates whichever it needs at the yielded
    path. The temporary lives beside the target so that the final rename stays on one
    file system and is atomic; a writer killed at any point leaves the previous complete
    output in place.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(target.parent, f".{target.name}.", target)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent))
    temporary = scratch / target.name
    try:
        yield temporary
        publish(temporary, target, scratch)
    except (OSError, RuntimeError) as error:
        if not _is_write_failure(error, target.parent):
            raise
        written = _megabytes(temporary)
        free = shutil.disk_usage(target.parent).free / 1e6
        raise UserError(
            f"could not write {target}: {_reason(error)} after {written:.1f} MB, {free:.1f} MB free on its "
            f"file system; free space and re-run (the previous {target.name}, if any, is unchanged)"
        ) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _is_write_failure(error: BaseException | None, folder: Path) -> bool:
    """A full disk or a file size limit, here or in the error this one was raised while handling.

    OSError says so by its errno; torch.save's C++ writer only says "file write failed"
    or "iostream error", then fails again while closing the archive.
    """
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            return True
        if isinstance(error, RuntimeError) and any(
            text in str(error) for text in ("iostream error", "file write failed", "failed writing file")
        ):
            return True
        error = error.__context__
    return shutil.disk_usage(folder).free < 1e6


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno is not None:
        return os.strerror(error.errno).lower()
    return "the write failed (disk full or file size limit)"


def _megabytes(path: Path) -> float:
    if path.is_dir():
        return sum(child.stat().st_size for child in path.rglob("*") if child.is_file()) / 1e6
    return path.stat().st_size / 1e6 if path.exists() else 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_scratch(folder: Path, prefix: str, target: Path | None = None) -> None:
    """Delete ``<prefix><pid>-*.tmp`` scratch folders in ``folder`` whose process is gone (killed mid-write).

    Scratch names carry their writer's process id, so a live writer's folder is never
    touched. If a killed publish had already moved the old ``target`` aside (see
    ``publish``) and the target is missing, the old copy is put back rather than deleted.
    """
    if not folder.is_dir():
        return
    for stale in folder.glob(f"{glob.escape(prefix)}*-*.tmp"):
        pid = stale.name[len(prefix) :].partition("-")[0]
        if not pid.isdigit() or _alive(int(pid)) or not stale.is_dir():
            continue
        if target is not None and not target.exists() and (stale / "old").exists():
            os.replace(stale / "old", target)
        size = _megabytes(stale)
        shutil.rmtree(stale, ignore_errors=True)
        print(f"removed {stale} ({size:.1f} MB), left by a run that was killed", file=sys.stderr)


def size_mb(path: str | os.PathLike[str]) -> float:
    """A file's size on disk in megabytes (10^6 bytes)."""
    return os.path.getsize(path) / 1e6


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically, keys in the order given."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Write rows sharing the same keys as CSV with a header line, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
