#!/usr/bin/env bash
# Stop the broker started by scripts/kafka-start.sh and delete its state dir,
# so the next start begins from an empty cluster. Safe to run when nothing is
# running. With KAFKA_KEEP_STATE=1 the state dir stays, for
# `KAFKA_KEEP_STATE=1 kafka-start.sh` to restart the same broker.
# Env: KTABLE_KAFKA_DIR (/tmp/ktable-kafka), KAFKA_STOP_TIMEOUT (20 s).
set -euo pipefail

STATE=${KTABLE_KAFKA_DIR:-/tmp/ktable-kafka}
PID_FILE=$STATE/kafka.pid
TIMEOUT=${KAFKA_STOP_TIMEOUT:-20}

log() { echo "kafka-stop: $*" >&2; }
# kill -0 also succeeds on a zombie (exited, not yet reaped by its parent),
# so look at the process state instead.
alive() { [[ -r /proc/$1/stat ]] && ! awk '{exit $3 != "Z"}' "/proc/$1/stat" 2>/dev/null; }

# Only signal the pid if it is still our JVM (pids get recycled).
pid=$(cat "$PID_FILE" 2>/dev/null || true)
if [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka'; then
  # SIGTERM triggers Kafka's controlled shutdown (flushes logs, closes cleanly).
  log "stopping broker pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < TIMEOUT * 5; i++)); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    log "still alive after ${TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  log "stopped"
else
  log "no running broker found for $STATE"
fi

# The marker guards against deleting a dir this tooling did not create
# (e.g. KTABLE_KAFKA_DIR pointed somewhere important by mistake).
if [[ ${KAFKA_KEEP_STATE:-} == 1 ]]; then
  log "keeping $STATE for a restart"
elif [[ -f $STATE/.ktable-kafka ]]; then
  rm -rf "$STATE"
elif [[ -e $STATE ]]; then
  log "not removing $STATE: it has no .ktable-kafka marker"
fi
