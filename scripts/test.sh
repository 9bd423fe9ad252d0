#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs every tier
# (lint, unit + property, sshd integration, parity, kubelet decoder, real-engine end-to-end against the
# local lab) and prints where the time went (benchmarks/bench_suite_time.py).
#
#   scripts/test.sh               the pure lane (ruff, mypy, the strict docs build, tests/unit) starts as soon
#                                 as .venv exists, beside the toolchain build: on a cold machine it fills the
#                                 CPU the Go builds leave idle (downloads, links). Then three lanes at once:
#                                 the lab tier (e2e) split over two labs of its own (the fault module and what
#                                 follows it on lab 1; every other e2e module on a second lab), and the other
#                                 tiers that need no lab (integration, parity, kubelet decoder, the unit tests
#                                 that run a toolchain binary) beside them. The lanes without a lab are niced
#                                 so the labs' timeouts (and the Go builds) are not what they slow down
#   scripts/test.sh ARGS...       one pytest run with ARGS, e.g. `scripts/test.sh -m "not e2e"`
#
# Junit reports and the fast lane's log go to $KUBE_AUDIT_TEST_REPORTS (default .build/test-reports).
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
reports=${KUBE_AUDIT_TEST_REPORTS:-.build/test-reports}
py=.venv/bin/python
common=(-ra -p no:cacheprovider)

if (($#)); then
  bash scripts/setup.sh
  t_setup=$(( $(date +%s) - t_start ))
  rm -rf "$reports" && mkdir -p "$reports"
  .venv/bin/ruff check .
  .venv/bin/mypy
  bash scripts/docs.sh
  set +e
  "$py" -m pytest "${common[@]}" --junitxml="$reports/run.xml" "$@"
  rc=$?
  set -e
  "$py" benchmarks/bench_suite_time.py "$reports/run.xml" --wall "setup=$t_setup" \
    --wall "whole run=$(( $(date +%s) - t_start ))"
  exit "$rc"
fi

bash scripts/setup.sh --no-toolchain
rm -rf "$reports" && mkdir -p "$reports"

pure_lane() {
  local t0 rc=0
  t0=$(date +%s)
  .venv/bin/ruff check . || rc=1
  .venv/bin/mypy || rc=1
  bash scripts/docs.sh || rc=1
  "$py" -m pytest "${common[@]}" tests/unit -m "not toolchain" --durations=15 --junitxml="$reports/pure.xml" || rc=1
  echo "$(( $(date +%s) - t0 ))" > "$reports/pure.seconds"
  return "$rc"
}

pure_log="$reports/pure-lane.log"
echo "[test] pure lane (ruff, mypy, docs build, tests/unit) runs beside the toolchain build and the labs; its log: $pure_log"
( renice -n 10 "$BASHPID" >/dev/null; pure_lane ) >"$pure_log" 2>&1 &
pure_pid=$!

bash scripts/toolchain.sh
t_setup=$(( $(date +%s) - t_start ))

fast_lane() {
  local t0 rc=0
  t0=$(date +%s)
  "$py" -m pytest "${common[@]}" -m "not e2e" --ignore=tests/unit --durations=15 --junitxml="$reports/fast.xml" \
    || rc=1
  "$py" -m pytest "${common[@]}" tests/unit -m toolchain --junitxml="$reports/unit-toolchain.xml" || rc=1
  echo "$(( $(date +%s) - t0 ))" > "$reports/fast.seconds"
  return "$rc"
}

fast_log="$reports/fast-lane.log"
echo "[test] fast lane (the tiers but e2e and the pure ones) runs beside the lab tier; its log: $fast_log"
( renice -n 10 "$BASHPID" >/dev/null; fast_lane ) >"$fast_log" 2>&1 &
fast_pid=$!

# The lab tier mostly waits (restarts, gates, the engine): two labs fill that time. Lab 1 takes the fault
# module (the longest) and a few others; a second lab (its own index, bridge and state dir) takes the rest, and
# new e2e modules land there. Each lane is its own pytest session, so each brings up its own lab.
lab1_files=(tests/e2e/test_flag_spellings.py tests/e2e/test_kubeadm.py tests/e2e/test_rollout_faults.py
            tests/e2e/test_toggle_keeps_agent.py tests/e2e/test_volume_accuracy.py)
lab2_ignore=()
for f in "${lab1_files[@]}"; do lab2_ignore+=(--ignore="$f"); done
lab2_state=${KUBE_AUDIT_E2E_LAB2:-$HOME/.cache/kube-audit/lab-e2e-2}
lab2_log="$reports/lab2-lane.log"

t_lab=$(date +%s)
echo "[test] the second lab's lane (lab ${KUBE_AUDIT_E2E_LAB2_INDEX:-2}, $lab2_state) runs beside; its log: $lab2_log"
( KUBE_AUDIT_E2E_LAB_INDEX=${KUBE_AUDIT_E2E_LAB2_INDEX:-2} KUBE_AUDIT_E2E_LAB="$lab2_state" \
    "$py" -m pytest "${common[@]}" -m e2e "${lab2_ignore[@]}" --durations=30 --junitxml="$reports/e2e-lab2.xml"
  echo "$?" > "$reports/lab2.rc"; echo "$(( $(date +%s) - t_lab ))" > "$reports/lab2.seconds" ) >"$lab2_log" 2>&1 &
lab2_pid=$!

set +e
"$py" -m pytest "${common[@]}" -m e2e --durations=30 --junitxml="$reports/e2e.xml" "${lab1_files[@]}"
lab_rc=$?
t_lab1=$(( $(date +%s) - t_lab ))
wait "$lab2_pid"
lab2_rc=$(cat "$reports/lab2.rc" 2>/dev/null || echo 1)
wait "$fast_pid"
fast_rc=$?
wait "$pure_pid"
pure_rc=$?
set -e
t_lab=$(( $(date +%s) - t_lab ))

echo
echo "================================ second lab's lane (ran beside) ================================"
cat "$lab2_log"
echo
echo "================================ pure lane (ran beside the toolchain build and the labs) ================================"
cat "$pure_log"
echo
echo "================================ fast lane (ran beside the lab tier) ================================"
cat "$fast_log"
echo
echo "================================ where the time went ================================"
"$py" benchmarks/bench_suite_time.py "$reports/pure.xml" "$reports/fast.xml" "$reports/unit-toolchain.xml" \
  "$reports/e2e.xml" "$reports/e2e-lab2.xml" \
  --wall "setup (toolchain included)=$t_setup" --wall "pure lane=$(cat "$reports/pure.seconds" 2>/dev/null || echo 0)" \
  --wall "fast lane=$(cat "$reports/fast.seconds" 2>/dev/null || echo 0)" \
  --wall "lab 1 lane=$t_lab1" --wall "lab 2 lane=$(cat "$reports/lab2.seconds" 2>/dev/null || echo 0)" \
  --wall "whole run=$(( $(date +%s) - t_start ))"
if ((lab_rc != 0 || lab2_rc != 0 || fast_rc != 0 || pure_rc != 0)); then
  echo "[test] FAILED: lab 1 lane exit $lab_rc, lab 2 lane exit $lab2_rc, fast lane exit $fast_rc, pure lane exit $pure_rc"
  exit 1
fi
