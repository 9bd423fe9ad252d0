"""Pack the master-side program into one zipapp that a stock `python3` runs.

Masters have python3 and nothing else we can count on, so the bundle carries the pure-Python
`ruamel.yaml` package (the round-trip YAML the planner rewrites manifests with; its optional C
loaders are separate packages and are not used: every loader here is `pure=True`). The zip is
byte-for-byte deterministic (fixed timestamps, sorted entries): its hash changes only when the code
does, so Pulumi re-copies it only then.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import ruamel.yaml

_COMPONENTS = Path(__file__).resolve().parent.parent
# Only what node.py imports: the planner and the desired-state model. Nothing that imports pulumi.
_OWN_FILES = ("manifest/__init__.py", "manifest/desired.py", "manifest/files.py", "manifest/flags.py",
              "manifest/gate.py", "manifest/yamlrt.py", "manifest/planner.py", "manifest/preflight.py",
              "manifest/readiness.py", "manifest/references.py", "manifest/mounts.py", "manifest/podcheck.py",
              "manifest/splice.py", "manifest/staticpods.py",
              "manifest/node.py")
_ENTRY = b"import sys\nfrom components.manifest.node import main\nsys.exit(main())\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)


# The package's own __init__ installs the finder for moved provider modules (components/_moved.py): a
# master never unpickles a provider, and an empty one keeps the bundle's bytes, name and every stack's
# RemoteFile of it as they were before the move.
_PACKAGE_INIT = ("__init__.py", b"")


def _entries() -> list[tuple[str, bytes]]:
    entries = [(f"components/{name}", (_COMPONENTS / name).read_bytes()) for name in _OWN_FILES]
    entries.append((f"components/{_PACKAGE_INIT[0]}", _PACKAGE_INIT[1]))
    yaml_dir = Path(ruamel.yaml.__file__).resolve().parent
    entries += [(f"ruamel/yaml/{p.name}", p.read_bytes()) for p in sorted(yaml_dir.glob("*.py"))]
    # ruamel is a namespace package where pip installs it; in the zip it is a plain one, which
    # zipimport handles on every python3 a master may have.
    entries.append(("ruamel/__init__.py", b""))
    entries.append(("__main__.py", _ENTRY))
    return sorted(entries)


def build_bundle_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in _entries():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return b"#!/usr/bin/env python3\n" + buffer.getvalue()


def build_bundle(out_dir: Path) -> Path:
    """Write the bundle into `out_dir` under a content-addressed name and return its path."""
    data = build_bundle_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"kube-audit-node-{digest}.pyz"
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path
