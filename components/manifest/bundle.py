"""Pack the master-side program into one zipapp that a stock `python3` runs.

Masters have python3 and nothing else we can count on, so the bundle carries the pure-Python
`ruamel.yaml` package (the round-trip YAML the planner rewrites manifests with; its optional C
loaders are separate packages and are not used: every loader here is `pure=True`). The zip is
byte-for-byte deterministic (fixed timestamps, sorted entries): its hash changes only when the code
does, so Pulumi re-copies it only then.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import sys
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


def _entries() -> list[tuple[str, bytes]]:
    entries = [(f"components/{name}", (_COMPONENTS / name).read_bytes()) for name in _OWN_FILES]
    # The package's own __init__ installs the finder for moved provider modules (components/_moved.py): a
    # master never unpickles a provider, and an empty one keeps the bundle's bytes, name and every stack's
    # RemoteFile of it as they were before the move.
    entries.append(("components/__init__.py", b""))
    yaml_dir = Path(ruamel.yaml.__file__).resolve().parent
    entries += [(f"ruamel/yaml/{p.name}", p.read_bytes()) for p in sorted(yaml_dir.glob("*.py"))]
    # ruamel is a namespace package where pip installs it; in the zip it is a plain one, which
    # zipimport handles on every python3 a master may have.
    entries.append(("ruamel/__init__.py", b""))
    entries.append(("__main__.py", _ENTRY))
    return sorted(entries)


def _member(name: str) -> zipfile.ZipInfo:
    """A zip entry that depends on its name only (fixed time, mode, compression): deterministic bytes."""
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def build_bundle_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in _entries():
            archive.writestr(_member(name), data)
    return b"#!/usr/bin/env python3\n" + buffer.getvalue()


def with_bytecode(bundle: bytes) -> bytes:
    """The same bundle plus this interpreter's bytecode beside each module, for a preview's in-memory run.

    zipimport never writes a cache, so every run from a zip compiles ruamel.yaml and our modules again
    (~0.25 s CPU a master, most of the preview preflight's own cost). A `.pyc` beside each `.py` is used
    where the master's python3 is this interpreter's version and skipped (magic number) elsewhere, so the
    sources stay what runs on any other python3. Unchecked-hash pycs (PEP 552) because the zip's fixed
    timestamps would otherwise have to match. Only previews send this: it is never written to a master
    or hashed into a resource, so the copy `up` makes (content-addressed) stays byte-identical across
    the python versions people run `pulumi` with.
    """
    shebang, _, rest = bundle.partition(b"\n")
    source = zipfile.ZipFile(io.BytesIO(rest))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info in source.infolist():
            data = source.read(info)
            archive.writestr(info, data)
            if info.filename.endswith(".py") and info.filename != "__main__.py":
                code = compile(data, info.filename, "exec", dont_inherit=True)
                pyc = importlib._bootstrap_external._code_to_hash_pyc(  # type: ignore[attr-defined]
                    code, importlib.util.source_hash(data), checked=False)
                archive.writestr(_member(info.filename + "c"), bytes(pyc))
    return shebang + b"\n" + buffer.getvalue()


def build_preview_bundle(bundle: Path) -> bytes:
    """`with_bytecode` of the bundle `build_bundle` wrote, cached beside it per python version.

    Compiling takes ~0.15 s, about what it saves on one master: without the cache a preview would
    pay it every time. The bundle's name carries its content hash and the cache's name adds the
    python version, so a stale entry is never read.
    """
    tag = sys.implementation.cache_tag or "nocache"
    path = bundle.with_name(f"{bundle.stem}.{tag}.preview.pyz")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    preview = with_bytecode(bundle.read_bytes())
    # Written aside and renamed: two previews at once (a fleet) never read half a file.
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    part.write_bytes(preview)
    os.replace(part, path)
    return preview


def build_bundle(out_dir: Path) -> Path:
    """Write the bundle into `out_dir` under a content-addressed name and return its path."""
    data = build_bundle_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"kube-audit-node-{digest}.pyz"
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path
