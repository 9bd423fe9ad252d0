"""lab up / down / status: the multi-master lab cluster on this machine.

Layout of the state dir (default ~/.cache/kube-audit/lab, or $KUBE_AUDIT_LAB):

    lab.json                      lab settings (index -> bridge/subnet, masters, stack)
    pki/                          lab CA, front-proxy CA, etcd CA, client certs, sa keys
    ssh/id_ed25519{,.pub}         the key the program logs in with; known_hosts
    admin.kubeconfig              client cert in system:masters, server = master 1
    etcd/ etcd.log etcd.pid       the one etcd every master uses (https://10.77.N.1:2379)
    controllers.{log,pid}         DaemonSet-status stand-in for kube-controller-manager
    hosts/lab-master-K/
        etc-kubernetes/           the host's /etc/kubernetes   (manifests/, pki/, admin.conf)
        var-log-kubernetes/       the host's /var/log/kubernetes (audit/ appears here)
        tmp/                      the host's /tmp
        var-upper/ var-work/      the host's writes to /var (an overlay over the machine's /var)
        apiserver.log             apiserver stdout/stderr + "### kalab" supervisor markers
        status.json               supervisor state (pids, starts, crashes, last exit)
        sshd_config sshd.log ssh/ the host's sshd
    pulumi-state/ pulumi-home/    offline Pulumi backend and home
    helm/                         Helm cache/config/data
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from . import manifests, pki, stack, system
from .config import CHART, REPO, Host, Lab, find_binary
from .kube import Client

SUPERVISOR = Path(__file__).resolve().parent / "supervisor"  # a package run as `python3 DIR`
BIND_TARGETS = ("/etc/kubernetes", "/var/log/kubernetes", "/tmp")
HELM_RELEASE, HELM_NS = "insight-agent", "insight-system"


def log(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


def node_python() -> str:
    """The interpreter the supervisor runs with: Debian's python3 (+python3-yaml) if usable."""
    for cand in ("/usr/bin/python3", sys.executable):
        if os.path.exists(cand) and system.run(cand, "-c", "import yaml", check=False).returncode == 0:
            return cand
    raise RuntimeError("no python3 with PyYAML for the node supervisor (apt-get install python3-yaml)")


def admin_client(lab: Lab, host: Host | None = None) -> Client:
    host = host or lab.hosts()[0]
    return Client(host.server(), str(lab.pki / "ca.crt"), str(lab.pki / "admin.crt"), str(lab.pki / "admin.key"))


def apiserver_version(binary: Path) -> str:
    out = system.run(str(binary), "--version").stdout.strip()  # "Kubernetes v1.35.0"
    return out.split()[-1]


# -- checks -----------------------------------------------------------------------------------

def preflight(lab: Lab) -> dict[str, Path]:
    if os.geteuid() != 0:
        raise SystemExit("lab: must run as root (network and mount namespaces)")
    for target in (*BIND_TARGETS, "/var"):
        if str(lab.state).startswith(target.rstrip("/") + "/"):
            raise SystemExit(f"lab: the state dir {lab.state} must not be under {target} "
                             "(each host gets its own copy of that path)")
    missing = [t for t in ("ip", "unshare", "nsenter", "mount", "openssl", "ssh-keygen")
               if shutil.which(t) is None]
    if not os.path.exists("/usr/sbin/sshd"):
        missing.append("/usr/sbin/sshd (openssh-server)")
    bins: dict[str, Path] = {}
    for name in ("kube-apiserver", "etcd", "helm"):
        p = find_binary(name)
        if p is None:
            missing.append(f"{name} (scripts/toolchain.sh builds it)")
        else:
            bins[name] = p
    if missing:
        raise SystemExit("lab: missing prerequisites: " + ", ".join(missing)
                         + "\n(apt packages: lab/requirements-apt.txt)")
    return bins


# -- pieces -----------------------------------------------------------------------------------

def ensure_keys(lab: Lab) -> None:
    lab.ssh_key.parent.mkdir(parents=True, exist_ok=True)
    if not lab.ssh_key.exists():
        system.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kube-audit-lab",
                   "-f", str(lab.ssh_key))
    pki.shared(lab.pki, lab.gateway)
    lab.kubeconfig.write_text(manifests.kubeconfig(lab.hosts()[0].server(), lab.pki / "ca.crt",
                                                   lab.pki / "admin.crt", lab.pki / "admin.key"))
    lab.kubeconfig.chmod(0o600)


def etcd_client(lab: Lab) -> Client:
    return Client(f"https://{lab.gateway}:2379", str(lab.pki / "etcd/ca.crt"),
                  str(lab.pki / "apiserver-etcd-client.crt"), str(lab.pki / "apiserver-etcd-client.key"))


def etcd_healthy(lab: Lab) -> bool:
    try:
        return etcd_client(lab).get("/health").get("health") == "true"  # type: ignore[union-attr]
    except Exception:
        return False


def ensure_etcd(lab: Lab, etcd: Path) -> None:
    data = lab.etcd_dir / "data"
    pid_file = lab.etcd_dir / "etcd.pid"
    if system.pid_from_file(pid_file, str(data)) is None:
        data.parent.mkdir(parents=True, exist_ok=True)
        gw = lab.gateway
        p = lab.pki / "etcd"
        proc = system.spawn([
            str(etcd), "--name", "lab-etcd", "--data-dir", str(data),
            "--listen-client-urls", f"https://{gw}:2379", "--advertise-client-urls", f"https://{gw}:2379",
            "--listen-peer-urls", f"http://{gw}:2380", "--initial-advertise-peer-urls", f"http://{gw}:2380",
            "--initial-cluster", f"lab-etcd=http://{gw}:2380",
            "--cert-file", str(p / "server.crt"), "--key-file", str(p / "server.key"),
            "--trusted-ca-file", str(p / "ca.crt"), "--client-cert-auth",
        ], lab.etcd_dir / "etcd.log")
        pid_file.write_text(f"{proc.pid}\n")
        log(f"etcd: started pid {proc.pid} on https://{gw}:2379")
    system.wait_for("etcd /health", lambda: etcd_healthy(lab), timeout=60)


def prepare_host(lab: Lab, h: Host, version: str) -> None:
    for d in (h.etc_kubernetes / "manifests", h.var_log_kubernetes, h.tmp, h.dir / "ssh", h.dir / "run",
              h.dir / "rootfs"):
        d.mkdir(parents=True, exist_ok=True)
    h.tmp.chmod(0o1777)
    pki.install_host(lab.pki, h.name, h.ip, h.etc_kubernetes / "pki")
    admin_conf = h.etc_kubernetes / "admin.conf"
    if not admin_conf.exists():
        admin_conf.write_text(manifests.kubeconfig(h.server(), lab.pki / "ca.crt", lab.pki / "admin.crt",
                                                   lab.pki / "admin.key"))
        admin_conf.chmod(0o600)
    # The initial manifest is written once: afterwards the host's disk is the host's (as after
    # `kubeadm init`); `lab down --purge` starts over.
    marker = h.dir / ".initialised"
    if not marker.exists():
        h.manifest.write_text(manifests.apiserver_yaml(h.ip, f"https://{lab.gateway}:2379", version))
        h.manifest.chmod(0o600)
        marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
    if not h.host_key.exists():
        system.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{h.name}", "-f", str(h.host_key))
    (h.dir / "sshd_config").write_text(manifests.sshd_config(
        h.ip, h.host_key, lab.state / "ssh/authorized_keys", h.dir / "run/sshd.pid"))
    (h.dir / "hosts").write_text(f"127.0.0.1 localhost\n{h.ip} {h.name}\n")


def supervisor_pid(h: Host) -> int | None:
    return system.pid_from_file(h.pid_file, str(h.status_file))


def ensure_host(lab: Lab, h: Host, apiserver: Path, python: str) -> None:
    system.ensure_host_net(h.netns, h.veth, lab.bridge, f"{h.ip}/{lab.prefix_len}", lab.gateway)
    if supervisor_pid(h) is not None:
        return
    # Leftovers of a crashed supervisor (an orphaned apiserver or sshd in the netns) go first.
    system.kill_pids(system.netns_pids(h.netns))
    # Each host gets its own /tmp, so a repo checked out under /tmp (as CI may do) would be invisible
    # inside the host: run a copy of the supervisor kept in the state dir instead.
    supervisor = lab.state / "bin" / SUPERVISOR.name
    supervisor.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SUPERVISOR, supervisor, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [
        "ip", "netns", "exec", h.netns, "unshare", "-m", "-u", "--propagation", "private", "--",
        python, str(supervisor), "--name", h.name, "--hostname", h.name,
        "--outer-ns", f"mnt={os.readlink('/proc/self/ns/mnt')}",
        "--outer-ns", f"uts={os.readlink('/proc/self/ns/uts')}",
        "--overlay", f"/var:{h.dir / 'var-upper'}:{h.dir / 'var-work'}",
        "--bind", f"{h.etc_kubernetes}:/etc/kubernetes",
        "--bind", f"{h.var_log_kubernetes}:/var/log/kubernetes",
        "--bind", f"{h.tmp}:/tmp",
        "--manifests", "/etc/kubernetes/manifests",
        "--apiserver-bin", str(apiserver), "--rootfs", str(h.dir / "rootfs"), "--run-dir", str(h.dir / "run"),
        "--log", str(h.apiserver_log), "--status", str(h.status_file), "--hosts-file", str(h.dir / "hosts"),
        "--sshd-config", str(h.dir / "sshd_config"), "--sshd-log", str(h.dir / "sshd.log"),
        "--pod-log-dir", "/var/log/pods",
    ]
    proc = system.spawn(cmd, h.dir / "supervisor.out")
    h.pid_file.write_text(f"{proc.pid}\n")
    log(f"{h.name}: supervisor pid {proc.pid} in netns {h.netns} ({h.ip})")


CONTROLLERS = Path(__file__).resolve().parent / "controllers.py"


def ensure_controllers(lab: Lab, python: str) -> None:
    """The DaemonSet-status stand-in for kube-controller-manager (lab/controllers.py)."""
    pid_file = lab.state / "controllers.pid"
    if system.pid_from_file(pid_file, str(CONTROLLERS)) is not None:
        return
    cmd = [python, str(CONTROLLERS), "--ca", str(lab.pki / "ca.crt"), "--cert", str(lab.pki / "controllers.crt"),
           "--key", str(lab.pki / "controllers.key")]
    for h in lab.hosts():
        cmd += ["--server", h.server()]
    proc = system.spawn(cmd, lab.state / "controllers.log")
    pid_file.write_text(f"{proc.pid}\n")
    log(f"controllers: DaemonSet status stand-in pid {proc.pid}")


def ensure_helm_release(lab: Lab, helm: Path) -> None:
    env = {**os.environ, **lab.env()}
    st = system.run(str(helm), "status", HELM_RELEASE, "-n", HELM_NS, check=False, env=env)
    if st.returncode == 0:
        return
    system.run(str(helm), "install", HELM_RELEASE, str(CHART), "-n", HELM_NS, "--create-namespace",
               env=env, cwd=str(REPO))
    log(f"helm: installed {HELM_RELEASE} into {HELM_NS} (as the DCE installer would)")


# -- commands ---------------------------------------------------------------------------------

def up(lab: Lab, timeout: float = 300) -> None:
    t0 = time.monotonic()
    bins = preflight(lab)
    python = node_python()
    version = apiserver_version(bins["kube-apiserver"])
    lab.save()
    for t in BIND_TARGETS:
        os.makedirs(t, exist_ok=True)  # mount points on the machine (empty)
    # Hosts beyond --masters (from an earlier, larger lab) are switched off and removed.
    wanted = {h.netns for h in lab.hosts()}
    for ns in system.netns_list(f"kalab{lab.index}-m"):
        if ns not in wanted:
            idx = int(ns.rsplit("-m", 1)[1])
            _stop_host(lab, Host(idx, lab.index, lab.state))
            shutil.rmtree(Host(idx, lab.index, lab.state).dir, ignore_errors=True)
    ensure_keys(lab)
    system.ensure_bridge(lab.bridge, f"{lab.gateway}/{lab.prefix_len}")
    ensure_etcd(lab, bins["etcd"])
    pub = Path(str(lab.ssh_key) + ".pub").read_text()
    (lab.state / "ssh/authorized_keys").write_text(pub)
    for h in lab.hosts():
        prepare_host(lab, h, version)
        ensure_host(lab, h, bins["kube-apiserver"], python)
    lab.known_hosts.write_text("".join(f"{h.ip} {h.host_public_key()}\n" for h in lab.hosts()))
    for h in lab.hosts():
        system.wait_for(f"{h.name} sshd on {h.ip}:22", lambda h=h: system.ssh_banner(h.ip), timeout=60)
        waited = system.wait_for(f"{h.name} kube-apiserver /readyz", lambda h=h: admin_client(lab, h).ready(),
                                 timeout=timeout)
        log(f"{h.name}: ready ({h.ip}, waited {waited:.1f}s)")
    ensure_controllers(lab, python)
    ensure_helm_release(lab, bins["helm"])
    stack.setup(lab, log)
    log(f"up in {time.monotonic() - t0:.1f}s; state dir {lab.state}")
    log('environment: eval "$(python3 -m lab env)"   (or lab/env.sh)')


def _stop_host(lab: Lab, h: Host) -> None:
    pid = supervisor_pid(h)
    if pid is not None:
        system.stop_pid(pid, timeout=45)  # the supervisor gives the apiserver its grace period
    system.kill_pids(system.netns_pids(h.netns))
    system.delete_host_net(h.netns, h.veth)


def down(lab: Lab, purge: bool = False) -> None:
    if not (lab.state / "lab.json").exists():
        # No lab was ever made from this state dir: its (default) names may belong to another lab.
        log(f"no lab in {lab.state}; nothing to stop")
        if purge and lab.state.exists():
            shutil.rmtree(lab.state, ignore_errors=True)
        return
    # The controllers' open watch keeps an apiserver from exiting on SIGTERM (it waits for the
    # grace period), so they go first; then every host is told to stop at once.
    pid = system.pid_from_file(lab.state / "controllers.pid", str(CONTROLLERS))
    if pid is not None:
        system.stop_pid(pid, timeout=10)
        log("controllers: stopped")
    names = {h.netns: h for h in lab.hosts()}
    for ns in system.netns_list(f"kalab{lab.index}-m"):
        idx = int(ns.rsplit("-m", 1)[1])
        names.setdefault(ns, Host(idx, lab.index, lab.state))
    pids = {h.netns: supervisor_pid(h) for h in names.values()}
    for p in pids.values():
        if p is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
    for h in names.values():
        _stop_host(lab, h)
        log(f"{h.name}: stopped")
    data = lab.etcd_dir / "data"
    pid = system.pid_from_file(lab.etcd_dir / "etcd.pid", str(data))
    if pid is not None:
        system.stop_pid(pid, timeout=20)
        log("etcd: stopped")
    system.delete_link(lab.bridge)
    if purge:
        cfg = lab.stack_config
        if (lab.state / "lab.json").exists() and cfg.exists():
            cfg.unlink()
            log(f"removed {cfg}")
        shutil.rmtree(lab.state, ignore_errors=True)
        log(f"purged {lab.state}")


def status(lab: Lab) -> dict:
    out: dict = {"state": str(lab.state), "bridge": system.link_exists(lab.bridge), "hosts": []}
    out["etcd"] = system.pid_from_file(lab.etcd_dir / "etcd.pid", str(lab.etcd_dir / "data")) is not None
    out["etcd_healthy"] = out["etcd"] and etcd_healthy(lab)
    out["controllers"] = system.pid_from_file(lab.state / "controllers.pid", str(CONTROLLERS)) is not None
    for h in lab.hosts():
        st: dict = {}
        if h.status_file.exists():
            try:
                st = json.loads(h.status_file.read_text())
            except ValueError:
                st = {}
        sup = supervisor_pid(h)
        out["hosts"].append({
            "name": h.name, "ip": h.ip, "netns": system.netns_exists(h.netns),
            "supervisor": sup, "sshd": bool(sup) and system.ssh_banner(h.ip, timeout=1),
            "ready": bool(sup) and admin_client(lab, h).ready(timeout=1),
            "apiserver_pid": st.get("apiserver_pid") if sup else None,
            "starts": st.get("starts"), "crashes": st.get("crashes"), "state": st.get("state") if sup else "down",
            "manifest_file": st.get("manifest_file"), "problem": st.get("problem"),
        })
    out["stack_config"] = str(lab.stack_config) if lab.stack_config.exists() else None
    return out


def format_status(s: dict) -> str:
    lines = [f"state dir: {s['state']}",
             f"bridge: {'up' if s['bridge'] else 'absent'}; etcd: "
             f"{'healthy' if s['etcd_healthy'] else ('running' if s['etcd'] else 'stopped')}; "
             f"controllers: {'running' if s.get('controllers') else 'stopped'}"]
    for h in s["hosts"]:
        lines.append(
            f"{h['name']:<14} {h['ip']:<12} {h['state'] or '-':<9} ready={'yes' if h['ready'] else 'no':<3} "
            f"ssh={'yes' if h['sshd'] else 'no':<3} apiserver_pid={h['apiserver_pid'] or '-'} "
            f"starts={h['starts'] or 0} crashes={h['crashes'] or 0}"
            + (f" problem={h['problem']}" if h.get("problem") else ""))
    lines.append(f"stack config: {s['stack_config'] or '(none)'}")
    return "\n".join(lines)
