#!/usr/bin/env bash
# Prints the pid of the broker scripts/kafka-start.sh started (state in
# KTABLE_KAFKA_DIR, default /tmp/ktable-kafka) and exits 0 if it still runs; exits 1
# otherwise. The benchmark scripts use it to leave running a broker they did not
# start, and to stop one they did.
set -uo pipefail
state=${KTABLE_KAFKA_DIR:-/tmp/ktable-kafka}
pid=$(cat "$state/kafka.pid" 2>/dev/null) || exit 1
[[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka' || exit 1
echo "$pid"
