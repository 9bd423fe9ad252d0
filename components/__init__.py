"""kube-audit's program. The old names of moved provider modules resolve to their new place (see _moved.py)."""

from components import _moved

_moved.install()
