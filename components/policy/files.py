"""Reading a policy file: a regular file, UTF-8, and no bigger than kube-audit checks (loader.py).

Every refusal is a problem at the file's 1:1, so it prints like any other policy problem.
"""

from __future__ import annotations

import os
import stat

from .loader import MAX_POLICY_BYTES, load_policy, too_big
from .model import Policy
from .problems import PolicyError, Problem


def _read(path: str | os.PathLike[str], source: str) -> bytes:
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        # Reading a FIFO blocks forever and a device can be endless: refuse before opening.
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "a device or socket"
        raise PolicyError([Problem(source, 1, 1, f"cannot read file: it is {kind}, not a regular file")])
    with open(path, "rb") as handle:
        # One byte past the cap tells "too big" without reading a huge file into memory.
        raw = handle.read(MAX_POLICY_BYTES + 1)
        if len(raw) > MAX_POLICY_BYTES:
            size = max(len(raw), os.fstat(handle.fileno()).st_size)
            raise PolicyError([Problem(source, 1, 1, too_big(size))])
    return raw


def load_policy_file(
    path: str | os.PathLike[str], *, kubernetes_version: tuple[int, int] | None = None, lenient: bool = False
) -> Policy:
    """Read and load a policy file; unreadable, non-regular, non-UTF-8 or oversized files are a problem at 1:1."""
    source = os.fspath(path)
    try:
        raw = _read(path, source)
        text = raw.decode("utf-8")
    except (OSError, ValueError) as err:
        if isinstance(err, UnicodeDecodeError):
            message = f"file is not UTF-8 text: {err.reason} at byte {err.start}"
            raise PolicyError([Problem(source, 1, 1, message)]) from None
        # ValueError: a path the OS cannot take at all (a NUL byte in it).
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise PolicyError([Problem(source, 1, 1, f"cannot read file: {reason}")]) from None
    policy = load_policy(text, source, kubernetes_version=kubernetes_version, lenient=lenient)
    return Policy(
        rules=policy.rules,
        omit_stages=policy.omit_stages,
        omit_managed_fields=policy.omit_managed_fields,
        text=text,
        source=source,
        name=policy.name,
        annotations=policy.annotations,
        dropped=policy.dropped,
        raw=raw,
    )
