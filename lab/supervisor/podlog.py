"""The apiserver's output where the kubelet keeps container logs, in the CRI log format."""

from __future__ import annotations

import datetime as _dt


def cri_line(line: bytes) -> bytes:
    """One line as the kubelet's CRI log format has it: time, stream, full-line tag, text."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
    return stamp + b" stderr F " + line.rstrip(b"\n") + b"\n"


def copy_output(pipe, log_fh, pod_log: str) -> None:
    """Tee the apiserver's output: raw into the lab's apiserver.log, CRI lines into the pod log."""
    with open(pod_log, "ab", buffering=0) as pod_fh:
        for line in iter(pipe.readline, b""):
            log_fh.write(line)
            pod_fh.write(cri_line(line))
    pipe.close()
