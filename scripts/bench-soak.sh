#!/usr/bin/env bash
# Sustained load against `ktable serve` on a real Apache Kafka broker (benches/soak.rs):
# 64 clients mixing prepared lookups, simple-protocol lookups and aggregates while the
# table ingests 50,000 records/s, for 10 minutes; RSS and latencies every 30 s, then
# a check of every row against a model of what was produced. Not part of CI.
#
#   scripts/bench-soak.sh                       # 600 s, 50,000 records/s, 64 clients
#   SOAK_SECONDS=120 SOAK_RATE=20000 scripts/bench-soak.sh
#
# Starts the broker (scripts/kafka-start.sh) unless one is running, and stops it at
# the end if it started it. Exits non-zero on a failed statement, an undelivered
# record or a row that differs from the model.
#
# Env: the SOAK_* variables of benches/soak.rs, KTABLE_CACHE, CARGO_TARGET_DIR and the
#      scripts/kafka-start.sh variables.
set -euo pipefail
cd "$(dirname "$0")/.."

export KTABLE_CACHE=${KTABLE_CACHE:-$HOME/.cache/ktable}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$KTABLE_CACHE/target}

kafka_started=
if pid=$(scripts/kafka-running.sh); then
  echo "bench-soak: using the Kafka broker already running (pid $pid)" >&2
else
  kafka_started=1
fi
cleanup() {
  if [[ -n $kafka_started ]]; then scripts/kafka-stop.sh || true; fi
}
trap cleanup EXIT
eval "$(scripts/kafka-start.sh)"

# `cargo bench` builds the ktable binary with the bench profile too (the driver
# starts it as its own process: CARGO_BIN_EXE_ktable).
KAFKA_BROKERS=$KAFKA_BROKERS cargo bench --bench soak
