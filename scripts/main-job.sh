#!/usr/bin/env bash
# The main job, on this machine, from a fresh clone:
#   1. scripts/setup.sh        Debian packages, .venv, toolchain (Pulumi CLI + providers, kube-apiserver,
#                              etcd, helm built from pinned Go modules; cached builds are skipped)
#   2. python3 -m lab up       3 masters (network + mount namespaces, sshd, static-pod supervisor,
#                              real kube-apiserver), one etcd, insight-agent installed by Helm,
#                              the `lab` stack (Pulumi.lab.yaml) with an offline file backend
#   3. pulumi up --stack lab   audit logging on, one master at a time
#   4. prints real audit events from each master's host log dir (/var/log/kubernetes/audit)
#   5. prints `pulumi preview --diff` of switching `enabled` off (not applied)
#
# Teardown:
#   python3 -m lab down            stop the lab (hosts, apiservers, etcd, bridge); state is kept, so a
#                                  later `python3 -m lab up` brings the same cluster back
#   python3 -m lab down --purge    also delete the state dir (~/.cache/kube-audit/lab) and Pulumi.lab.yaml
# (To switch audit off for real first: `eval "$(python3 -m lab env)"; pulumi config set --stack lab
#  kube-audit:enabled false; pulumi up --yes --stack lab`.)
#
# Options: --masters N (default 3); --skip-setup (machine already set up).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

masters=3
skip_setup=0
while (($#)); do
    case "$1" in
        --masters) masters="$2"; shift 2 ;;
        --skip-setup) skip_setup=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "main-job.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

step() { printf '\n==== [main-job %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

t_all=$(date +%s)
if ((skip_setup == 0)); then
    step "setup (packages, .venv, toolchain)"
    t=$(date +%s); bash scripts/setup.sh; echo "setup: $(elapsed "$t")"
fi

step "lab up ($masters masters)"
t=$(date +%s); python3 -m lab up --masters "$masters"; echo "lab up: $(elapsed "$t")"
eval "$(python3 -m lab env)"

step "pulumi up --stack lab (enabled=$(pulumi config get --stack lab kube-audit:enabled))"
t=$(date +%s); pulumi up --yes --stack lab --skip-preview; t_up=$(elapsed "$t"); echo "pulumi up: $t_up"

step "audit events from each master's host log dir"
python3 -m lab audit --touch --limit 10

step "pulumi preview --diff of switching enabled off (not applied)"
off_cfg="$(mktemp "$KUBE_AUDIT_LAB/Pulumi.lab-off.XXXXXX.yaml")"
trap 'rm -f "$off_cfg"' EXIT
cp Pulumi.lab.yaml "$off_cfg"
pulumi config set --stack lab --config-file "$off_cfg" kube-audit:enabled false
pulumi preview --diff --stack lab --config-file "$off_cfg"

step "done in $(elapsed "$t_all") (pulumi up: $t_up)"
cat <<EOF
The lab keeps running. Look around:
  python3 -m lab status            per-host state          python3 -m lab ssh lab-master-1
  eval "\$(python3 -m lab env)"     then pulumi ... --stack lab, helm ..., KUBECONFIG is set
Teardown: python3 -m lab down   (or: python3 -m lab down --purge, to delete all lab state)
EOF
