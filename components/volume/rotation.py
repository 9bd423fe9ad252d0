"""How much history kube-apiserver's log rotation keeps on a master (natefinch/lumberjack).

lumberjack rotates when a write would take the file past ``maxSize`` MiB (0: 100 MiB before
Kubernetes 1.36), keeps ``maxBackup`` rotated files (0: all) and deletes rotated files older than
``maxAge`` days (0: never). So right after a rotation a master holds ``maxBackup`` full files of
history, just before the next one ``maxBackup + 1``: we report the first (what is guaranteed).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
LUMBERJACK_DEFAULT_MB = 100


@dataclass(frozen=True)
class Rotation:
    """The ``--audit-log-max*`` flags (the stack's ``log.maxSize``/``maxBackup``/``maxAge``)."""

    max_size_mb: int = 100
    max_backup: int = 1
    max_age_days: int = 30
    compress: bool = False

    @property
    def file_bytes(self) -> int:
        return (self.max_size_mb or LUMBERJACK_DEFAULT_MB) * MIB


@dataclass(frozen=True)
class History:
    """What one master keeps at a given write rate."""

    hours: float | None  # guaranteed history; None = unbounded (no backup or age limit)
    hours_max: float | None  # just before a rotation
    rotate_every_hours: float | None  # None when nothing is written
    disk_bytes: int | None  # most the log dir holds (None: unbounded)
    limited_by: str  # "maxBackup", "maxAge" or "none"


def history(bytes_per_day: float, rotation: Rotation, compress_ratio: float = 1.0) -> History:
    """History kept on one master writing ``bytes_per_day``; ``compress_ratio`` = gzip size / size."""
    age_hours = rotation.max_age_days * 24.0 if rotation.max_age_days > 0 else None
    size = rotation.file_bytes
    backup_ratio = compress_ratio if rotation.compress else 1.0
    if bytes_per_day <= 0:
        disk = None if rotation.max_backup == 0 else size + int(rotation.max_backup * size * backup_ratio)
        return History(age_hours, age_hours, None, disk, "maxAge" if age_hours else "none")
    per_hour = bytes_per_day / 24.0
    rotate_every = size / per_hour
    if rotation.max_backup > 0:
        by_backup = rotation.max_backup * rotate_every
        disk = size + int(rotation.max_backup * size * backup_ratio)
        if age_hours is not None and age_hours < by_backup:
            kept_bytes = bytes_per_day * rotation.max_age_days * backup_ratio
            return History(age_hours, age_hours, rotate_every, min(disk, size + int(kept_bytes)), "maxAge")
        return History(by_backup, by_backup + rotate_every, rotate_every, disk, "maxBackup")
    if age_hours is not None:
        disk = size + int(bytes_per_day * rotation.max_age_days * backup_ratio)
        return History(age_hours, age_hours, rotate_every, disk, "maxAge")
    return History(None, None, rotate_every, None, "none")
