"""The whole-cluster preflight, run read-only during a preview by the very code `up` runs.

`up` checks every master with the node program's `preflight` action (components/preflight.py);
a preview must say the same before anyone merges. The node program may not be on the master yet
(first run) or may be an older build, and a preview writes nothing on a master, so it is not
copied there: the bundle `up` would copy travels on stdin and is run from an anonymous in-memory
file (memfd), with the same request `up` sends. Same code, same request, same message.

No pulumi here: the command line, the stdin framing and the judgement of the result are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.remote.plain_errors import command_failure

# Runs as `python3 -c BOOTSTRAP`; stdin is "<request length>\n<request><bundle>". Old syntax on
# purpose (no f-strings): on a python3 too old for the bundle it must still say so plainly.
BOOTSTRAP = r"""
import io, os, sys
data = sys.stdin.buffer.read()
head = data.index(b"\n")
size = int(data[:head])
request, bundle = data[head + 1:head + 1 + size], data[head + 1 + size:]
if not hasattr(os, "memfd_create"):
    sys.stderr.write("kube-audit: python3 is %d.%d on this master; 3.9 or newer is required; nothing was changed\n"
                     % sys.version_info[:2])
    sys.exit(2)
fd = os.memfd_create("kube-audit-node-preflight")
view = memoryview(bundle)
while view:
    view = view[os.write(fd, view):]
path = "/proc/self/fd/%d" % fd
sys.argv = [path, "preflight"]
sys.stdin = io.TextIOWrapper(io.BytesIO(request), encoding="utf-8")
import runpy
runpy.run_path(path, run_name="__main__")
"""


def frame(request_json: str, bundle: bytes) -> bytes:
    """What the bootstrap reads on stdin: the request (its length first), then the bundle."""
    request = request_json.encode("utf-8")
    return str(len(request)).encode("ascii") + b"\n" + request + bundle


@dataclass(frozen=True)
class PreflightRun:
    """One master's preview preflight: the node program's exit code and output, or why none."""

    code: int | None
    out: str = ""
    err: str = ""
    error: str | None = None
    """Set when the check did not finish (timeout, lost session): nothing is known then."""


def refusal(label: str, run: PreflightRun) -> str | None:
    """The message `up` would stop with on this master, or None when `up` would go on.

    A non-zero exit is exactly the failure `up`'s preflight resource reports (components/remote/ssh.py
    formats it with the same function).
    """
    if run.code is None or run.code == 0:
        return None
    return command_failure(label, run.code, run.out, run.err)

