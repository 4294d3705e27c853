#!/usr/bin/env bash
# Start a single-node Apache Kafka 4.x broker (KRaft, combined broker+controller)
# for ktable's integration tests, without Docker: the jars come from Maven
# Central (the Apache download mirrors are not reachable from dev/CI machines).
#
#   eval "$(scripts/kafka-start.sh)"     # sets KAFKA_LIBS and KAFKA_BROKERS
#   scripts/kafka-stop.sh
#
# Idempotent: if the broker from a previous run is still alive it is reused
# (after checking it answers); otherwise a fresh state dir is created.
# Progress goes to stderr; stdout carries only KAFKA_LIBS=... and, last,
# KAFKA_BROKERS=host:port.
#
# With KAFKA_KEEP_STATE=1, a state dir left by `KAFKA_KEEP_STATE=1 kafka-stop.sh`
# is started again as it was (topics and records kept): a broker restart.
#
# Env: KAFKA_VERSION (4.1.0), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
#      KTABLE_CACHE (~/.cache/ktable), KTABLE_KAFKA_DIR (/tmp/ktable-kafka),
#      KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), KAFKA_START_TIMEOUT (60 s).
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.1.0}
PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
STATE=${KTABLE_KAFKA_DIR:-/tmp/ktable-kafka}
LIBS=${KTABLE_CACHE:-$HOME/.cache/ktable}/kafka-$KAFKA_VERSION/libs
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
BROKERS=127.0.0.1:$PORT
PID_FILE=$STATE/kafka.pid
LOG=$STATE/broker.log
TIMEOUT=${KAFKA_START_TIMEOUT:-60}

log() { echo "kafka-start: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# Broker-side failures: the log tail usually names the cause (bind error...).
die_log() {
  if [[ -f $LOG ]]; then
    log "errors in $LOG:"; grep -m 10 -E ' (ERROR|FATAL) ' "$LOG" >&2 || true
    log "last lines of $LOG:"; tail -n 25 "$LOG" >&2
  fi
  die "$@"
}

# Run a class from the broker jars (StorageTool, the CLI probe); a plain
# command (not a function) after `timeout`, hence the array.
RUN_CLASS=("$JAVA" -Xmx256m -Dktable.log.level=WARN
  -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -cp "$LIBS/*")

# Our broker is alive iff the pid file names a live process running kafka.Kafka
# (the cmdline check guards against a recycled pid).
broker_pid() {
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka' \
    && echo "$pid"
}

# "Accepting connections" is not enough (the socket opens before the broker has
# registered with the controller), so ask for the topic list via the admin API.
broker_ready() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || return 1
  timeout 30 "${RUN_CLASS[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" \
    --command-config "$STATE/admin.properties" --list >/dev/null 2>&1
}

wait_ready() {
  local deadline=$((SECONDS + TIMEOUT))
  until broker_ready; do
    broker_pid >/dev/null || die_log "broker process exited during startup"
    ((SECONDS < deadline)) || die_log "broker not ready on $BROKERS after ${TIMEOUT}s"
    sleep 1
  done
}

done_ok() {
  echo "KAFKA_LIBS=$LIBS"
  echo "KAFKA_BROKERS=$BROKERS"
}

# 1. Jars: resolve once into the cache; the .complete marker means an
#    interrupted copy is never mistaken for a usable cache.
if [[ ! -f $LIBS/.complete ]]; then
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  rm -rf "$LIBS.tmp" && mkdir -p "$LIBS.tmp"
  # mvn's output (only colour codes when it works) is shown only on failure.
  # -U: retry artifacts whose earlier download failed instead of trusting the
  # failure cached in ~/.m2 (a flaky network must not poison later runs).
  mvn -q -B -U -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$LIBS.tmp" >"$LIBS.tmp/mvn.log" 2>&1 \
    || { cat "$LIBS.tmp/mvn.log" >&2; die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"; }
  rm "$LIBS.tmp/mvn.log" && touch "$LIBS.tmp/.complete"
  rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS"
fi

# 2. Reuse a broker we started earlier if it is still up.
if pid=$(broker_pid); then
  log "broker already running (pid $pid), checking it answers"
  wait_ready
  done_ok
  exit 0
fi

# Something else (another Kafka, docker compose) on our port would make the
# broker die with a bind error; say so plainly instead.
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT is already in use by another process (set KAFKA_PORT)"
fi

restart=
if [[ ${KAFKA_KEEP_STATE:-} == 1 && -f $STATE/.ktable-kafka && -f $STATE/server.properties ]]; then
  restart=1
fi

if [[ -z $restart ]]; then
  # 3. Fresh state dir. The marker file lets us (and kafka-stop.sh) rm -rf it
  #    safely: never delete a dir we did not create.
  if [[ -e $STATE ]]; then
    [[ -f $STATE/.ktable-kafka ]] || die "$STATE exists and was not created by this script; remove it or set KTABLE_KAFKA_DIR"
    rm -rf "$STATE"
  fi
  mkdir -p "$STATE/data"
  touch "$STATE/.ktable-kafka"

  cat >"$STATE/server.properties" <<EOF
# Single combined broker+controller in KRaft mode (written by kafka-start.sh).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$STATE/data
# One node: every internal topic must fit on it.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
num.partitions=1
auto.create.topics.enable=true
# Tests should not wait 3 s for every consumer group to form.
group.initial.rebalance.delay.ms=0
# Cleaner polls every second (default 15 s) so compaction tests finish quickly.
log.cleaner.backoff.ms=1000
EOF

  # Short client timeouts so each readiness probe fails fast instead of hanging.
  cat >"$STATE/admin.properties" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF

  # 4. Format the metadata log: --standalone makes this node the sole voter of
  #    a dynamic (KIP-853) controller quorum, as Kafka 4.x's quickstart does.
  CLUSTER_ID=$("${RUN_CLASS[@]}" kafka.tools.StorageTool random-uuid) || die "StorageTool random-uuid failed"
  "${RUN_CLASS[@]}" kafka.tools.StorageTool format --standalone -t "$CLUSTER_ID" \
    -c "$STATE/server.properties" >"$LOG" 2>&1 || die_log "StorageTool format failed"
fi

# 5. Launch detached (setsid: survives the caller's shell/process group). The
#    inner sh writes its own pid and then execs java, so the pid is the JVM's.
log "${restart:+re}starting Kafka $KAFKA_VERSION on $BROKERS (state in $STATE)"
# A restart finds the stopped broker's pid file: without removing it, the wait
# below would read that dead pid before the new one is written.
rm -f "$PID_FILE"
# shellcheck disable=SC2016,SC2086  # $$ is for the inner sh; KAFKA_HEAP_OPTS is a list of flags
setsid sh -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
  "$JAVA" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" \
  -cp "$LIBS/*" kafka.Kafka "$STATE/server.properties" \
  >>"$LOG" 2>&1 </dev/null &
for _ in $(seq 50); do [[ -s $PID_FILE ]] && break; sleep 0.2; done

wait_ready
log "broker ready (pid $(cat "$PID_FILE")), log: $LOG"
done_ok
