"""A real Helm chart repository on the lab bridge, holding versions of the stand-in insight-agent chart.

Each version is the fixture chart (tests/fixtures/insight-agent) with its Chart.yaml version set and
one chart default changed per version (FluentBit's image tag), packaged with the real `helm
package` and indexed with `helm repo index`, then served over HTTP on the lab's bridge address, as
DCE's chart repository serves the real chart. A changed default is what tells "the new chart's
defaults" apart from `--reuse-values`' hybrid (new templates, old defaults).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from lab.config import Lab, find_binary

from .harness import E2E

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/insight-agent"
# An older-style chart (v0.8.x value path `global.exporters.auditLog.enabled`, no ghippo switch).
OLDER_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/insight-agent-v0.8"
# The chart default each version ships: a later version bumps FluentBit, as real chart releases do.
IMAGE_TAGS = {"1.0.0": "2.2.0", "1.1.0": "2.2.1", "1.2.0": "3.0.0"}


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class ChartRepository:
    """Packages chart versions into `root` and serves `root` at http://<address>:<port>."""

    def __init__(self, helm: Path, root: Path, address: str, env: dict[str, str]) -> None:
        self.helm, self.root, self.env = helm, root, env
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self._server = ThreadingHTTPServer((address, 0), partial(_Quiet, directory=str(root)))
        self.url = f"http://{address}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, version: str, fixture: Path = FIXTURE) -> None:
        """Package the stand-in chart (or `fixture`) at `version` and re-index the repository."""
        src = self.root.parent / f"chart-src-{version}/insight-agent"
        shutil.rmtree(src.parent, ignore_errors=True)
        shutil.copytree(fixture, src)
        chart = yaml.safe_load((src / "Chart.yaml").read_text())
        chart.update(version=version, appVersion=version)
        (src / "Chart.yaml").write_text(yaml.safe_dump(chart, sort_keys=False))
        values = yaml.safe_load((src / "values.yaml").read_text())
        values["fluent-bit"]["image"]["tag"] = IMAGE_TAGS.get(version, values["fluent-bit"]["image"]["tag"])
        (src / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
        self._helm("package", str(src), "--destination", str(self.root))
        self._helm("repo", "index", str(self.root), "--url", self.url)

    def versions(self) -> list[str]:
        index = yaml.safe_load((self.root / "index.yaml").read_text())
        return sorted(e["version"] for e in index["entries"]["insight-agent"])

    def _helm(self, *args: str) -> str:
        r = subprocess.run([str(self.helm), *args], env=self.env, capture_output=True, text=True, timeout=120,
                           check=False)
        if r.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r.stdout

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True)
class HelmSetup:
    """What a module that drives a real Helm release needs: helm, its env, its own stack's lab view, a repository."""

    helm: Path
    lab: Lab
    env: dict[str, str]
    repo: ChartRepository


@contextmanager
def helm_setup(e2e: E2E, stack: str, name: str) -> Iterator[HelmSetup]:
    """A Helm home of its own (so adding the `insight-release` alias touches no other test's Helm) and a chart
    repository on the lab bridge, for the stack `stack`; both are removed afterwards."""
    helm_bin = find_binary("helm")
    assert helm_bin is not None
    state = e2e.lab.state
    lab = dataclasses.replace(e2e.lab, stack=stack, config_file=str(state / f"Pulumi.{stack}.yaml"))
    helm_home = state / f"helm-{name}"
    shutil.rmtree(helm_home, ignore_errors=True)
    env = {**os.environ, **lab.env(), "HELM_CONFIG_HOME": str(helm_home / "config"),
           "HELM_CACHE_HOME": str(helm_home / "cache"), "HELM_DATA_HOME": str(helm_home / "data")}
    repo = ChartRepository(helm_bin, state / f"chart-repo-{name}/repo", e2e.lab.gateway, env)
    try:
        yield HelmSetup(helm_bin, lab, env, repo)
    finally:
        repo.close()
        shutil.rmtree(repo.root.parent, ignore_errors=True)
        shutil.rmtree(helm_home, ignore_errors=True)
