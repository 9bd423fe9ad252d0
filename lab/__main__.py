"""python3 -m lab <up|down|status|env|exec|ssh> — the kube-audit lab cluster (run from the repo root).

  up [--masters N] [--index I] [--stack S] [--config-file F]   create or repair the lab (idempotent)
  down [--purge]                      stop everything; --purge also deletes the state dir
  status [--json]                     what runs, per host
  env                                 print `export` lines for the offline Pulumi/Helm environment
                                      (and install the toolchain's plugins into the lab's PULUMI_HOME)
  plugins [--home DIR]                install the toolchain's plugins into DIR ($PULUMI_HOME, ~/.pulumi)
  audit [--touch] [--limit N]         print audit events from each master's host log dir
  exec HOST -- CMD...                 run CMD inside a host (its network, mount and UTS namespaces)
  ssh HOST [CMD...]                   ssh into a host with the lab key

The state dir is $KUBE_AUDIT_LAB (default ~/.cache/kube-audit/lab) or --state.
"""

from __future__ import annotations

import os
import sys


def _ensure_yaml() -> None:
    """Re-run under an interpreter that has PyYAML (the repo venv or Debian's python3)."""
    try:
        import yaml  # noqa: F401
    except ImportError:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for cand in (os.path.join(here, ".venv/bin/python"), "/usr/bin/python3"):
            if os.path.exists(cand) and os.path.realpath(cand) != os.path.realpath(sys.executable):
                os.execv(cand, [cand, "-m", "lab", *sys.argv[1:]])
        raise SystemExit("lab: PyYAML is needed (apt-get install python3-yaml)") from None


def main(argv: list[str] | None = None) -> int:
    _ensure_yaml()
    import argparse
    import json
    import shlex
    import time

    from . import lab as labmod
    from .config import Lab

    p = argparse.ArgumentParser(prog="python3 -m lab", description=__doc__.split("\n")[0])
    p.add_argument("--state", help="state dir (default $KUBE_AUDIT_LAB or ~/.cache/kube-audit/lab)")
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up")
    u.add_argument("--masters", type=int)
    u.add_argument("--index", type=int, help="lab number: bridge kalabI, subnet 10.77.I.0/24 (default 0)")
    u.add_argument("--stack", help="stack name (default lab)")
    u.add_argument("--config-file", help="stack config file (default Pulumi.<stack>.yaml in the repo root)")
    u.add_argument("--timeout", type=float, default=300)
    d = sub.add_parser("down")
    d.add_argument("--purge", action="store_true")
    s = sub.add_parser("status")
    s.add_argument("--json", action="store_true")
    sub.add_parser("env")
    pl = sub.add_parser("plugins", help="install the toolchain's provider plugins into a PULUMI_HOME")
    pl.add_argument("--home", help="default: $PULUMI_HOME, else ~/.pulumi")
    au = sub.add_parser("audit", help="print audit events from every master's host log dir")
    au.add_argument("--touch", action="store_true", help="first make a few requests (a Secret read...)")
    au.add_argument("--limit", type=int, default=12)
    e = sub.add_parser("exec")
    e.add_argument("host")
    e.add_argument("command", nargs=argparse.REMAINDER)
    sh = sub.add_parser("ssh")
    sh.add_argument("host")
    sh.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)

    lab = Lab.load(a.state)
    if a.cmd == "up":
        if a.masters is not None:
            if a.masters < 1 or a.masters > 9:
                p.error("--masters must be 1..9")
            lab.masters = a.masters
        if a.index is not None:
            if not 0 <= a.index <= 254:
                p.error("--index must be 0..254")
            lab.index = a.index
        if a.stack:
            lab.stack = a.stack
        if a.config_file:
            lab.config_file = os.path.abspath(a.config_file)
        try:
            labmod.up(lab, timeout=a.timeout)
        except (RuntimeError, TimeoutError) as exc:
            print(f"[lab] up failed: {exc}", file=sys.stderr)
            print("[lab] see the per-host logs under", lab.state / "hosts", file=sys.stderr)
            return 1
        return 0
    if a.cmd == "down":
        labmod.down(lab, purge=a.purge)
        return 0
    if a.cmd == "status":
        st = labmod.status(lab)
        print(json.dumps(st, indent=1) if a.json else labmod.format_status(st))
        return 0
    if a.cmd == "plugins":
        from . import plugins

        return plugins.main([a.home] if a.home else [])
    if a.cmd == "env":
        from . import plugins

        # The env says "plugins from PULUMI_HOME only": make it true (idempotent, quick when done),
        # also after a toolchain rebuild. Messages go to stderr: stdout is eval'ed.
        try:
            if lab.state.is_dir():  # no lab yet: `lab up` makes the home and installs
                lab.pulumi_home.mkdir(parents=True, exist_ok=True)
                plugins.install(lab.pulumi_home)
        except (plugins.PluginInstallError, OSError) as exc:
            print(f"[lab] warning: {exc}", file=sys.stderr)
        env = lab.env(base_path="$PATH")
        for k, v in env.items():
            if k == "PATH":
                print(f'export PATH="{v.split(":$PATH")[0]}:$PATH"')
            else:
                print(f"export {k}={shlex.quote(v)}")
        return 0
    if a.cmd == "audit":
        from . import audit

        marker = None
        if a.touch:
            marker = audit.touch(lab, labmod.admin_client)
            time.sleep(1.0)  # blocking mode writes synchronously; leave room for the last stage
        audit.show(lab, marker, a.limit)
        return 0
    host = lab.host(a.host)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if a.cmd == "exec":
        pid = labmod.supervisor_pid(host)
        if pid is None:
            print(f"[lab] {host.name} is not running", file=sys.stderr)
            return 1
        os.execvp("nsenter", ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--", *(cmd or ["bash"])])
    if a.cmd == "ssh":
        os.execvp("ssh", ["ssh", "-i", str(lab.ssh_key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                          "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", f"root@{host.ip}", *cmd])
    return 0


if __name__ == "__main__":
    sys.exit(main())
