"""The master-side program's file operations: whole writes, backups, and reading only what is safe.

Pure standard library, shipped inside the node bundle. Every write is whole or not at all (a
dot-file written fully, fsynced, size-checked, then renamed), and every refusal happens before
anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from typing import BinaryIO


class NodeError(Exception):
    """A failure to report; `code` is the process exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --- writes --------------------------------------------------------------------------------------


class WriteError(NodeError):
    """A file could not be written whole; the path is as it was before."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}; nothing changed ({path} is as it was)", code=1)
        self.path = path
        self.reason = reason


def _write_all(fd: int, data: bytes) -> None:
    # os.write may write less than asked (a full filesystem writes what fits, then fails): loop
    # until everything is written or the kernel says why not.
    view = memoryview(data)
    while view:
        count = os.write(fd, view)
        if count <= 0:
            raise OSError(errno.EIO, "the kernel accepted no bytes")
        view = view[count:]


def atomic_write(path: str, data: bytes, mode: int) -> None:
    """Write a dot-file beside `path` whole, fsync, check its size, rename: readers see the old or the
    new file, never half. On any failure the dot-file is removed and WriteError says nothing changed.

    The temporary name starts with a dot because the kubelet ignores dot-files in the manifests dir.
    """
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.kube-audit.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise WriteError(path, f"cannot create {tmp}: {exc.strerror or exc}") from exc
    try:
        try:
            _write_all(fd, data)
            os.fchmod(fd, mode)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size != len(data):
            raise OSError(errno.EIO, f"{tmp} holds {size} bytes after writing {len(data)}")
        os.rename(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise WriteError(path, exc.strerror or str(exc)) from exc
        raise
    # The rename is done: from here the new content is what readers see, so a failure is not
    # "nothing changed" and is left to propagate as is.
    dir_fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _backup_pattern(manifest: str) -> re.Pattern[str]:
    return re.compile(re.escape(os.path.basename(manifest)) + r"\.(\d{8}T\d{6}Z)(?:-(\d+))?\.kube-audit\.bak\Z")


def backup(manifest: str, data: bytes, backup_dir: str, now: float) -> str:
    """Copy `data` to a new timestamped file in `backup_dir`; never overwrites an older backup."""
    try:
        os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise NodeError(f"cannot create the backup dir {backup_dir}: {exc.strerror or exc}") from exc
    if not os.path.isdir(backup_dir):
        raise NodeError(f"the backup dir {backup_dir} is not a directory")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    path = os.path.join(backup_dir, f"{os.path.basename(manifest)}.{stamp}.kube-audit.bak")
    n = 1
    while os.path.lexists(path):
        n += 1
        path = os.path.join(backup_dir, f"{os.path.basename(manifest)}.{stamp}-{n}.kube-audit.bak")
    try:
        atomic_write(path, data, 0o600)
    except WriteError as exc:
        # Nothing but the backup was attempted yet, so this is a refusal with nothing changed.
        raise NodeError(f"cannot back up {manifest} to {path}: {exc.reason}") from exc
    return path


def prune_backups(manifest: str, backup_dir: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` of our backups of `manifest`; returns what was deleted.

    Only names we create are considered (`<manifest>.<UTC stamp>[-n].kube-audit.bak`), ordered by
    their stamp, so a hand-made copy in the same dir is never touched.
    """
    pattern = _backup_pattern(manifest)
    ours = []
    for entry in os.listdir(backup_dir):
        match = pattern.match(entry)
        if match and os.path.isfile(os.path.join(backup_dir, entry)):
            ours.append(((match.group(1), int(match.group(2) or 1)), entry))
    ours.sort()
    removed = []
    for _, entry in ours[: max(len(ours) - keep, 0)]:
        path = os.path.join(backup_dir, entry)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed



# The kubelet reads at most this much of a static-pod file; a bigger one is not a manifest it runs.
MAX_MANIFEST_BYTES = 10 << 20


def read_manifest(path: str) -> bytes:
    """The manifest's bytes, refusing anything but a regular file of sane size.

    A symlink is refused rather than followed: replacing it by rename would turn the link into a
    regular file and leave its target (what a person edits) with the old content. A FIFO or device
    would block or never end, so it is refused before it is opened for reading.
    """
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise NodeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if stat.S_ISLNK(info.st_mode):
        target = os.path.realpath(path)
        raise NodeError(f"{path} is a symlink to {target}; kube-audit replaces the manifest by rename and will "
                        f"not turn the link into a file: set paths.manifest to {target} or replace the link")
    if not stat.S_ISREG(info.st_mode):
        raise NodeError(f"{path} is not a regular file")
    if info.st_size > MAX_MANIFEST_BYTES:
        raise NodeError(f"{path} is {info.st_size} bytes; the kubelet reads static-pod files of up to "
                        f"{MAX_MANIFEST_BYTES}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise NodeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise NodeError(f"{path} is not a regular file")
        return handle.read(MAX_MANIFEST_BYTES + 1)


def check_backup_dir(backup_dir: str, manifest: str) -> None:
    """Refuse a backup dir we could not write into, before anything is written anywhere."""
    if _inside(backup_dir, os.path.dirname(manifest)):
        raise NodeError(f"backup dir {backup_dir} is inside the manifests dir {os.path.dirname(manifest)}; the "
                        "kubelet would run the backup")
    existing = backup_dir
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise NodeError(f"the backup dir {backup_dir} cannot be used: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NodeError(f"the backup dir {backup_dir} cannot be used: {existing} is not writable")


def _inside(path: str, directory: str) -> bool:
    inner, outer = os.path.realpath(path), os.path.realpath(directory)
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def file_mode(text: str) -> int:
    """An octal permission mode from 0 to 0777, nothing else.

    `int("-1", 8)` is -1, which os.open turns into 07777: setuid, setgid and sticky on a policy file.
    Every caller writes 0600 files, so the special bits are refused rather than passed on.
    """
    try:
        mode = int(text, 8)
    except ValueError as exc:
        raise NodeError(f"--mode {text!r} is not an octal file mode") from exc
    if not 0 <= mode <= 0o777:
        raise NodeError(f"--mode {text!r} is not a permission mode from 0 to 0777 (no setuid, setgid or sticky bit)")
    return mode


def read_capped(stream: BinaryIO, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """All of `stream`, refused past `limit` bytes before memory fills on a control-plane node.

    write-file carries the audit policy, capped far lower where it is loaded (components/policy).
    """
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise NodeError(f"the file on stdin is over {limit} bytes; refusing to write it")
    return data
