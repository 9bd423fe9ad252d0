"""lab/plugins.py: the toolchain's plugins go into a PULUMI_HOME at the version the SDK asks for, once
per build. Uses the real `pulumi plugin install` with a stand-in provider binary (a tiny script)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import pytest

from lab import plugins
from lab.config import Lab, toolchain_bin

INSTALLED = Path("plugins/resource-kubernetes-v4.34.2/pulumi-resource-kubernetes")
PINS = {"PULUMI_KUBERNETES_PLUGIN_VERSION": "4.34.2"}


def test_the_pinned_version_is_the_one_the_sdk_asks_the_engine_for() -> None:
    # The engine looks the plugin up by the version in the SDK's pulumi-plugin.json, exactly.
    asked = json.loads(resources.files("pulumi_kubernetes").joinpath("pulumi-plugin.json").read_text())
    assert asked["name"] == "kubernetes"
    assert plugins.pinned_versions()["PULUMI_KUBERNETES_PLUGIN_VERSION"] == asked["version"]


def test_the_lab_env_never_takes_plugins_from_path(tmp_path: Path) -> None:
    env = Lab(state=tmp_path / "lab").env()
    assert env["PULUMI_IGNORE_AMBIENT_PLUGINS"] == "true"
    assert env["PULUMI_HOME"] == str(tmp_path / "lab/pulumi-home")


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    pulumi = toolchain_bin() / "pulumi"
    if not pulumi.is_file():
        pytest.skip(f"no pulumi in {pulumi.parent} (scripts/toolchain.sh builds it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").symlink_to(pulumi)
    return bin_dir


def provider(bin_dir: Path, text: str, mtime: int) -> None:
    path = bin_dir / "pulumi-resource-kubernetes"
    path.write_text(f"#!/bin/sh\necho {text}\n")
    path.chmod(0o755)
    os.utime(path, (mtime, mtime))


def test_install_once_per_build(tools: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert plugins.install(home, tools, PINS) == [], "nothing built, nothing installed"

    provider(tools, "build-1", 1_000_000)
    assert plugins.install(home, tools, PINS) == ["kubernetes 4.34.2"]
    assert (home / INSTALLED).read_text() == "#!/bin/sh\necho build-1\n"
    assert os.access(home / INSTALLED, os.X_OK)
    assert plugins.install(home, tools, PINS) == [], "idempotent: the same build is not copied again"

    provider(tools, "build-2", 2_000_000)  # the toolchain rebuilt it at the same version
    assert plugins.install(home, tools, PINS) == ["kubernetes 4.34.2"]
    assert (home / INSTALLED).read_text() == "#!/bin/sh\necho build-2\n"

    (home / INSTALLED).unlink()  # removed by hand (or `pulumi plugin rm`): put back
    assert plugins.install(home, tools, PINS) == ["kubernetes 4.34.2"]
    assert (home / INSTALLED).is_file()


def test_a_failed_install_names_the_command_and_the_home(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text("#!/bin/sh\necho 'disk full' >&2\nexit 3\n")
    (bin_dir / "pulumi").chmod(0o755)
    provider(bin_dir, "x", 1)
    with pytest.raises(plugins.PluginInstallError, match=r"pulumi plugin install resource kubernetes 4\.34\.2 "
                                                         r"--file .* failed \(3\):\ndisk full") as info:
        plugins.install(tmp_path / "home", bin_dir, PINS)
    assert str(tmp_path / "home") in str(info.value)
