"""The toolchain's provider plugins, installed where the engine looks for plugins: one helper for every
PULUMI_HOME this project makes (the lab's, the tests' throwaway ones, a user's own).

Why not leave them on $PATH: the engine takes any `pulumi-resource-*` it finds on $PATH, version
unchecked, and says so with `warning: using pulumi-resource-kubernetes from $PATH at ...` on every
run (twice), a warning about the machine, not the stack, that teaches people to skip warnings.
Installed into $PULUMI_HOME/plugins at the version the SDK asks for (the engine's own lookup,
exact version match) and with PULUMI_IGNORE_AMBIENT_PLUGINS=true (ENV below), $PATH is not
searched and nothing is printed. The language host and the dynamic-provider host are "bundled"
plugins: the engine finds those beside the running `pulumi` binary whatever that variable says
(pulumi sdk/go/common/workspace/plugins.go, getPluginInfoAndPath, at the CLI's v3.274.1), and
the toolchain puts them there.

Offline: `pulumi plugin install --file` copies a local binary; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import IGNORE_AMBIENT_PLUGINS, REPO, toolchain_bin

# What every process that runs the engine against such a home needs (lab env, tests, scripts).
ENV = IGNORE_AMBIENT_PLUGINS
TOOLCHAIN_ENV = REPO / "scripts/toolchain.env"
# Stamp of what was installed from where, so a rebuilt toolchain binary is installed again.
STAMP = "kube-audit-plugins.json"


@dataclass(frozen=True)
class Plugin:
    kind: str
    name: str
    version_pin: str
    """The scripts/toolchain.env key holding the version the binary is stamped with, which is the
    version the pinned Python SDK asks the engine for (its pulumi-plugin.json)."""

    @property
    def binary(self) -> str:
        return f"pulumi-{self.kind}-{self.name}"


# Every plugin the toolchain builds that the engine does not find beside `pulumi` by itself.
PLUGINS = (Plugin("resource", "kubernetes", "PULUMI_KUBERNETES_PLUGIN_VERSION"),)


class PluginInstallError(RuntimeError):
    pass


def pinned_versions(path: Path = TOOLCHAIN_ENV) -> dict[str, str]:
    """scripts/toolchain.env's NAME=value lines (the file bash sources)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            pins[key.strip()] = value.strip()
    return pins


def _source_stamp(binary: Path) -> dict[str, object]:
    st = binary.stat()
    return {"source": str(binary.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def install(home: Path, bin_dir: Path | None = None, pins: dict[str, str] | None = None) -> list[str]:
    """Install the toolchain's plugins into PULUMI_HOME `home`; returns what was (re)installed.

    Idempotent: a plugin already installed from the same toolchain binary (path, size, mtime) is
    left alone, one from an older build is replaced. A plugin the toolchain has not built is
    skipped (the engine then says which plugin is missing, if the stack needs it).
    """
    tools = bin_dir or toolchain_bin()
    pulumi = tools / "pulumi"
    versions = pins if pins is not None else pinned_versions()
    stamp_path = home / STAMP
    try:
        stamps = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamps = {}
    done = []
    for plugin in PLUGINS:
        binary = tools / plugin.binary
        if not binary.is_file():
            continue
        version = versions[plugin.version_pin]
        key = f"{plugin.kind}-{plugin.name}-v{version}"
        installed = home / "plugins" / key / plugin.binary
        wanted = _source_stamp(binary)
        if stamps.get(key) == wanted and installed.is_file() and installed.stat().st_size == wanted["size"]:
            continue
        if not pulumi.is_file():
            raise PluginInstallError(f"cannot install {plugin.binary} into {home}: no pulumi binary in {tools} "
                                     "(scripts/toolchain.sh builds it)")
        # A directory holding only the binary: `--file DIR` copies it as is (a bare file is also
        # accepted, but goes through the tarball path and takes seconds longer).
        with tempfile.TemporaryDirectory(prefix="kube-audit-plugin-") as staging:
            os.symlink(binary.resolve(), Path(staging) / plugin.binary)
            env = {**os.environ, "PULUMI_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "true"}
            r = subprocess.run([str(pulumi), "plugin", "install", plugin.kind, plugin.name, version, "--file", staging,
                                "--reinstall", "--non-interactive"], env=env, capture_output=True, text=True,
                               timeout=300, check=False)
        if r.returncode != 0 or not installed.is_file():
            raise PluginInstallError(f"pulumi plugin install {plugin.kind} {plugin.name} {version} --file {binary} "
                                     f"into {home} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        stamps[key] = wanted
        done.append(f"{plugin.name} {version}")
    if done:
        stamp_path.write_text(json.dumps(stamps, indent=1, sort_keys=True) + "\n")
    return done


def main(argv: list[str] | None = None) -> int:
    """`python3 -m lab plugins [HOME]`: install into HOME, else $PULUMI_HOME, else ~/.pulumi."""
    args = sys.argv[1:] if argv is None else argv
    home = Path(args[0] if args else os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    home.mkdir(parents=True, exist_ok=True)
    try:
        done = install(home)
    except PluginInstallError as exc:
        print(f"lab plugins: {exc}", file=sys.stderr)
        return 1
    print(f"lab plugins: {', '.join(done) if done else 'already installed'} in {home}/plugins; run pulumi with "
          + " ".join(f"{k}={v}" for k, v in ENV.items()), file=sys.stderr)
    return 0
