"""Expected failures reach the user as their message; bugs keep their Python traceback.

The engine serves our SSH resources through Pulumi's Python dynamic-provider host
(`python -m pulumi.dynamic`, SDK 3.272). Its `_abort_with_traceback` wraps every provider call and
answers *any* exception with a gRPC error whose details are `traceback.format_exc()`, and the engine
prints those details as the resource's error. So a master's refusal ("preflight refused this
master: ...") reached the user as the last line of a dozen lines of host internals, and the SDK
offers no exception type or hook to say "this one is expected" (checked in 3.272.0's
pulumi/dynamic/__main__.py: the wrapper calls `traceback.format_exc()` through its module global
`traceback`, nothing else).

The smallest change that keeps bugs debuggable: in that host process only, the module global
`traceback` becomes a stand-in whose `format_exc()` returns the message of a `PlainError` (our
"expected failure, the message says it all" type) and defers to the real `traceback.format_exc()`
for everything else. The gRPC status code and the engine's handling are unchanged; only the text
differs. If a future SDK formats errors another way, `install` changes nothing and the traceback
comes back (tests/integration/test_plain_errors_engine.py then fails and says so).
"""

from __future__ import annotations

import sys
import traceback
import types
from typing import Any


class PlainError(RuntimeError):
    """An expected failure whose message names everything the user needs (which master, what check,
    the cause, the fix): the engine shows just the message. Anything else is a bug and keeps its
    traceback. A RuntimeError, as the SSH layer's failures always were, so callers catching that
    still do."""


def command_failure(label: str, code: int, out: str, err: str) -> str:
    """How a node command's non-zero exit reads, in `up` and in the preview's preflight alike.

    The command text is ours and holds no secret; stderr is the node program's report, which names
    the master, the check, the cause and the fix (components/manifest/node.py).
    """
    detail = (err.strip() or out.strip() or "(no output)")[-4000:]
    return f"on {label}: exit {code}: {detail}"


class _PlainTraceback:
    """The `traceback` module as the dynamic-provider host sees it, except for PlainError."""

    def format_exc(self, limit: int | None = None, chain: bool = True) -> str:
        error = sys.exc_info()[1]
        if isinstance(error, PlainError):
            return str(error)
        return traceback.format_exc(limit=limit, chain=chain)

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)


def _is_dynamic_host(module: types.ModuleType | None) -> bool:
    # The host runs as `python -m pulumi.dynamic`, so its module is __main__; these two names are
    # what 3.272 defines there. Pulumi programs, policy packs and tests have neither.
    return module is not None and hasattr(module, "DynamicResourceProviderServicer") \
        and hasattr(module, "_abort_with_traceback")


def install(host: types.ModuleType | None = None) -> bool:
    """Make the dynamic-provider host report PlainError without a traceback. Idempotent.

    Returns whether the host now does. Outside that host (the program, tests) it does nothing; a
    `traceback` global that is neither the stdlib module nor ours is left alone.
    """
    module = host if host is not None else sys.modules.get("__main__")
    if module is None or not _is_dynamic_host(module):
        return False
    current = getattr(module, "traceback", None)
    if isinstance(current, _PlainTraceback):
        return True
    if current is not traceback:
        return False
    module.traceback = _PlainTraceback()  # type: ignore[attr-defined]
    return True
