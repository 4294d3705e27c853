#!/usr/bin/env bash
# Stop the schema registry started by scripts/registry-start.sh (its state is in
# memory: nothing is kept). Safe to run when nothing is running.
# Env: KTABLE_REGISTRY_DIR (/tmp/ktable-registry).
set -euo pipefail
PID_FILE=${KTABLE_REGISTRY_DIR:-/tmp/ktable-registry}/registry.pid
pid=$(cat "$PID_FILE" 2>/dev/null || true)
# Only signal the pid if it is still our JVM (pids get recycled).
if [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'schema-registry'; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  echo "registry-stop: stopped pid $pid" >&2
fi
rm -f "$PID_FILE"
