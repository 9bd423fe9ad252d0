"""Old module names that existing stacks' state still holds, resolved to where the code lives now.

The Python analogue of Pulumi's `aliases`, for dynamic providers. Pulumi stores each dynamic
resource's provider as a dill pickle in the stack state (the `__provider` input and output), and dill
pickles a class BY REFERENCE: module path and class name, nothing else (not even the bases). The
dynamic-provider host unpickles the one in state to run `delete` and `read`, and the one in the
outputs survives every `up` whose `diff` says "no change" (our diffs compare named inputs only).
So after a module moves, a stack created before the move fails its next `up` (measured: the e2e
tests/e2e/test_state_from_previous_main.py with this table emptied) and its `destroy` with
ModuleNotFoundError unless the old name still imports. The finder below makes it import, lazily:
nothing is loaded until something asks for an old name, so the pure core still loads no pulumi.

Only names that can appear in state belong here: modules that defined a dynamic provider class.
Recorded pickles of each are in tests/unit/test_moved_modules.py. Never remove an entry while a
stack created before the move may still exist; a new move of a provider module adds one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

# old module name -> new module name, with why each exists
MOVED: dict[str, str] = {
    # RemoteCommandProvider, RemoteFileProvider (issue 21 moved the SSH layer into components/remote/)
    "components.ssh": "components.remote.ssh",
    # FluentBitConfigCheckProvider (issue 21 gathered the insight-agent into components/insight_agent/)
    "components.insight_agent_check": "components.insight_agent.check",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name as the new module object itself (one module, two names)."""

    def __init__(self, new: str) -> None:
        self.new = new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system stamped the alias's spec on the module after create_module; the module
        # keeps its own (so reload and introspection see its real name and file).
        module.__spec__ = self._spec


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds an old module name of MOVED and hands out the new module under it."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder on sys.meta_path once (components/__init__.py calls it on first import)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
