#!/usr/bin/env bash
# Restart time of `ktable serve` with a checkpoint against a full restore, and the full
# restore against Kafka Streams building a GlobalKTable of the same topic, on a real
# Apache Kafka broker (issue #11, P7 and P8):
#
#   scripts/bench-restart.sh                   # 10,000,000 records over 1,000,000 keys
#   BENCH_RECORDS=2000000 BENCH_KEYS=200000 scripts/bench-restart.sh
#
# 1. builds ktable and the topic loader (bench profile) and starts the broker
#    (scripts/kafka-start.sh) unless one runs;
# 2. loads BENCH_RECORDS JSON users over BENCH_KEYS keys (each key updated
#    BENCH_RECORDS / BENCH_KEYS times) into a new compacted 4-partition topic;
# 3. starts `ktable serve --state-dir` with an empty state folder and times it from
#    the process start until `ktable_tables` says the table is ready with every key
#    (a full restore), stops it with SIGINT (a clean shutdown writes the checkpoint),
#    starts it again and times the restart from the checkpoint the same way, checking
#    `restored_from`; BENCH_RUNS rounds of both;
#    In each round before those, Kafka Streams 4.1 (benches/kafka-streams, built
#    with Maven) restores a GlobalKTable of the topic into its in-memory store, then
#    into its default RocksDB store, each with a fresh application id and state
#    folder: seconds from `KafkaStreams.start()` to RUNNING (JVM start excluded);
# 4. prints the medians and the ratios (goals: restart at most 0.1x the full restore;
#    ktable's full restore at least 3x faster than Kafka Streams), and stops what it
#    started.
#
# Env: BENCH_RECORDS (10000000), BENCH_KEYS (1000000), BENCH_RUNS (3),
#      BENCH_KTABLE_PORT (54394), BENCH_DIR (/tmp/ktable-bench-restart), BENCH_TOPIC
#      (a topic an earlier run loaded, with the same BENCH_KEYS: not loaded again),
#      BENCH_KEEP=1 keeps the state folder, KTABLE_CACHE, CARGO_TARGET_DIR and the
#      scripts/kafka-start.sh variables.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${BENCH_RECORDS:-10000000}
KEYS=${BENCH_KEYS:-1000000}
RUNS=${BENCH_RUNS:-3}
PORT=${BENCH_KTABLE_PORT:-54394}
WORK=${BENCH_DIR:-/tmp/ktable-bench-restart}
export KTABLE_CACHE=${KTABLE_CACHE:-$HOME/.cache/ktable}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$KTABLE_CACHE/target}

log() { echo "bench-restart: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v psql >/dev/null || die "psql is needed (apt-get install postgresql-client)"

ktable_pid=
kafka_started=
cleanup() {
  if [[ -n $ktable_pid ]]; then kill "$ktable_pid" 2>/dev/null || true; wait "$ktable_pid" 2>/dev/null || true; fi
  if [[ -n $kafka_started ]]; then scripts/kafka-stop.sh >&2 || true; fi
  if [[ -z ${BENCH_KEEP:-} ]]; then rm -rf "$WORK/records.tsv" "$WORK/state"; fi
}
trap cleanup EXIT

log "building ktable and the loader (cargo build --profile bench)"
cargo build --profile bench --bin ktable --example load_benchmark_topic >&2
log "building the Kafka Streams side (mvn, benches/kafka-streams)"
(cd benches/kafka-streams && mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$KTABLE_CACHE/m2" \
  compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt >&2)
STREAMS_CP="benches/kafka-streams/target/classes:$(cat benches/kafka-streams/target/classpath.txt)"
streams_restore() {
  local answer
  answer=$(java -cp "$STREAMS_CP" GlobalTableRestore "$KAFKA_BROKERS" "$topic" "$1")
  [[ ${answer#* } == "$KEYS" ]] || die "Kafka Streams ($1) holds ${answer#* } keys, not $KEYS"
  echo "${answer% *}"
}
KTABLE=$CARGO_TARGET_DIR/release/ktable
LOADER=$CARGO_TARGET_DIR/release/examples/load_benchmark_topic

if pid=$(scripts/kafka-running.sh); then
  log "using the Kafka broker already running (pid $pid)"
else
  kafka_started=1
fi
eval "$(scripts/kafka-start.sh)"

mkdir -p "$WORK"
if [[ -n ${BENCH_TOPIC:-} ]]; then
  topic=$BENCH_TOPIC
  log "using the topic $topic as loaded by an earlier run ($KEYS keys)"
else
topic="bench-restart-$$"
log "generating $RECORDS records over $KEYS keys"
awk -v records="$RECORDS" -v keys="$KEYS" 'BEGIN {
  for (i = 0; i < records; i++) {
    k = i % keys
    printf "%d\t{\"name\":\"User %d\",\"email\":\"user%d@example.com\",\"age\":%d,\"city\":\"City %d\",\"score\":%d.%02d}\n",
      k, k, k, 18 + (i * 7919) % 63, (k * 104729) % 20, i % 1000, i % 100
  }
}' >"$WORK/records.tsv"
log "loading them into $topic"
"$LOADER" "$KAFKA_BROKERS" "$topic" 4 <"$WORK/records.tsv" >&2
rm -f "$WORK/records.tsv"
fi

cat >"$WORK/ktable.sql" <<EOF
CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, email TEXT, age INT, city TEXT, score DOUBLE)
  WITH (topic = '$topic');
EOF
printf '[[users]]\nname = "ktable"\npassword = "bench"\n' >"$WORK/ktable.toml"
export PGPASSWORD=bench
kt() { psql -X -q -h 127.0.0.1 -p "$PORT" -U ktable -d ktable "$@"; }

# Starts the server on the state folder and prints the seconds until the table is
# ready with every key, then `restored_from`. The end is the server's own "ready" log
# line (watched every 10 ms), checked afterwards with one query: polling with psql, a
# new process and a SCRAM login every 50 ms, took a sixth of a core from the restore.
serve_until_ready() {
  local started=$EPOCHREALTIME logged
  logged=$(wc -l <"$WORK/ktable.log")
  RUST_LOG=${RUST_LOG:-info,rdkafka=warn} "$KTABLE" serve --brokers "$KAFKA_BROKERS" \
    --sql "$WORK/ktable.sql" --config "$WORK/ktable.toml" --listen "127.0.0.1:$PORT" \
    --state-dir "$WORK/state" --group-id ktable-bench-restart >>"$WORK/ktable.log" 2>&1 &
  ktable_pid=$!
  local deadline=$((SECONDS + 1200)) ready answer
  until tail -n +"$((logged + 1))" "$WORK/ktable.log" | grep -qE 'ktable::source::[a-z]+: ready'; do
    kill -0 "$ktable_pid" 2>/dev/null || { tail -n 30 "$WORK/ktable.log" >&2; die "ktable exited"; }
    ((SECONDS < deadline)) || die "not ready after 1200 s"
    sleep 0.01
  done
  ready=$EPOCHREALTIME
  until answer=$(kt -Atc "SELECT ready, rows, restored_from FROM ktable_tables WHERE name = 'users'" 2>/dev/null) \
    && [[ $answer =~ ^(t|true)\|([0-9]+)\|(.*)$ ]]; do
    ((SECONDS < deadline)) || die "the server logged ready but does not answer"
    sleep 0.05
  done
  [[ ${BASH_REMATCH[2]} == "$KEYS" ]] || die "ready with ${BASH_REMATCH[2]} rows, not $KEYS"
  echo "$(echo "$ready - $started" | bc -l) ${BASH_REMATCH[3]}"
}

# Stops the server as Ctrl-C does: it writes its checkpoint before it exits.
stop_server() {
  kill -INT "$ktable_pid"
  wait "$ktable_pid" || true
  ktable_pid=
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

fulls=()
restarts=()
in_memory=()
rocksdb=()
: >"$WORK/ktable.log"
for run in $(seq 1 "$RUNS"); do
  in_memory+=("$(streams_restore in-memory)")
  rocksdb+=("$(streams_restore rocksdb)")
  log "run $run: Kafka Streams GlobalKTable in memory ${in_memory[-1]} s, RocksDB ${rocksdb[-1]} s"
  rm -rf "$WORK/state"
  # Not in a subshell: the server's pid must reach stop_server.
  serve_until_ready >"$WORK/answer"
  read -r full origin <"$WORK/answer"
  [[ $origin == full ]] || die "run $run: an empty state folder restored from '$origin'"
  stop_server
  serve_until_ready >"$WORK/answer"
  read -r restart origin <"$WORK/answer"
  [[ $origin == checkpoint ]] || die "run $run: the restart restored from '$origin', not the checkpoint"
  stop_server
  log "run $run: full restore $full s, restart from the checkpoint $restart s"
  fulls+=("$full")
  restarts+=("$restart")
done
memory_median=$(printf '%s\n' "${in_memory[@]}" | median)
rocksdb_median=$(printf '%s\n' "${rocksdb[@]}" | median)
full=$(printf '%s\n' "${fulls[@]}" | median)
restart=$(printf '%s\n' "${restarts[@]}" | median)
snapshot=$(du -sh "$WORK/state" | cut -f1)

cat <<EOF

restart benchmark, $(date -u +%Y-%m-%dT%H:%MZ): ktable $(git rev-parse --short HEAD) on Apache Kafka (local)
machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //; s/ [0-9]*-Core.*//')), $(free -g | awk '/Mem:/ { print $2 }') GiB; broker and ktable on the same machine
$RECORDS records over $KEYS keys, 4 partitions; checkpoint folder $snapshot; medians of $RUNS runs

| measurement | seconds | runs |
|---|---|---|
| full restore, process start to ready | $full | ${fulls[*]} |
| restart from the checkpoint, process start to ready | $restart | ${restarts[*]} |
| restart / full restore (goal at most 0.1) | $(echo "$restart / $full" | bc -l | cut -c1-5) | |
| Kafka Streams GlobalKTable, in-memory store, start to RUNNING | $memory_median | ${in_memory[*]} |
| Kafka Streams GlobalKTable, RocksDB store, start to RUNNING | $rocksdb_median | ${rocksdb[*]} |
| Kafka Streams in memory / ktable full restore (goal at least 3) | $(echo "$memory_median / $full" | bc -l | cut -c1-5) | |
| Kafka Streams RocksDB / ktable full restore (goal at least 3) | $(echo "$rocksdb_median / $full" | bc -l | cut -c1-5) | |
EOF
