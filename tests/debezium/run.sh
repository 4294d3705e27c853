#!/usr/bin/env bash
# Debezium's PostgreSQL connector against a real PostgreSQL, into the real broker at
# KAFKA_BROKERS, in JSON and in Avro (schemas in a real registry), read back by a
# `ktable serve` on that broker (DebeziumCdcTest). Starts a throwaway PostgreSQL
# (wal_level = logical) and the server, runs the Maven test, stops both. .ci/run calls
# it in its real-Kafka pass.
#
# Env: KAFKA_BROKERS (required), KTABLE_TEST_REGISTRY_URL (the registry's Confluent
#      API; scripts/registry-start.sh's registry, started if unset),
#      KTABLE_BIN (default: the debug build),
#      KTABLE_CACHE (~/.cache/ktable: the Maven repository), CDC_PG_PORT (54341),
#      CDC_KTABLE_PORT (54342), CDC_SEED (random changes; printed by the test).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${KAFKA_BROKERS:?KAFKA_BROKERS must name the broker (scripts/kafka-start.sh)}"
KTABLE_CACHE=${KTABLE_CACHE:-$HOME/.cache/ktable}
KTABLE_BIN=${KTABLE_BIN:-${CARGO_TARGET_DIR:-$KTABLE_CACHE/target}/debug/ktable}
PG_PORT=${CDC_PG_PORT:-54341}
KT_PORT=${CDC_KTABLE_PORT:-54342}
started_registry=
if [[ -z ${KTABLE_TEST_REGISTRY_URL:-} ]]; then
  eval "$(scripts/registry-start.sh)"
  : "${KTABLE_TEST_REGISTRY_URL:?the schema registry did not start}"
  started_registry=1
fi
WORK=$(mktemp -d /tmp/ktable-cdc.XXXXXX)
log() { echo "cdc: $*" >&2; }

# PostgreSQL refuses to run as root; the Debian package's `postgres` account runs it.
as_pg() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null || true)" $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    [[ -x $dir/initdb && -x $dir/pg_ctl ]] && { echo "$dir"; return; }
  done
  return 1
}
if ! PG_BIN=$(pg_bin); then
  log "installing PostgreSQL"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  PG_BIN=$(pg_bin)
fi

ktable_pid=
cleanup() {
  [[ -n $ktable_pid ]] && { kill "$ktable_pid" 2>/dev/null || true; wait "$ktable_pid" 2>/dev/null || true; }
  as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
  [[ -z $started_registry ]] || scripts/registry-stop.sh
}
trap cleanup EXIT

((EUID == 0)) && chown postgres "$WORK"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 ||
  { cat "$WORK/initdb.log" >&2; exit 1; }
cat >>"$WORK/pg/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
fsync = off
CONF
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/postgres.log" -w start >/dev/null ||
  { cat "$WORK/postgres.log" >&2; exit 1; }

# A server on a real broker requires its users to log in.
cat >"$WORK/ktable.toml" <<CONF
[[users]]
name = "ktable"
password = "cdc-test"
CONF
: >"$WORK/none.sql" # tables are declared by the test, not the demo's DDL
"$KTABLE_BIN" serve --config "$WORK/ktable.toml" --sql "$WORK/none.sql" --brokers "$KAFKA_BROKERS" \
  --schema-registry "$KTABLE_TEST_REGISTRY_URL" --listen "127.0.0.1:$KT_PORT" \
  >"$WORK/ktable.log" 2>&1 &
ktable_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$KT_PORT") 2>/dev/null && break
  sleep 0.2
done

log "PostgreSQL on $PG_PORT, ktable on $KT_PORT, Kafka at $KAFKA_BROKERS"
if ! (cd tests/debezium && KAFKA_BROKERS=$KAFKA_BROKERS CDC_PG_PORT=$PG_PORT KTABLE_PG_PORT=$KT_PORT \
  KTABLE_TEST_REGISTRY_URL=$KTABLE_TEST_REGISTRY_URL \
  mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$KTABLE_CACHE/m2" test); then
  log "failed; ktable's log:"; tail -n 40 "$WORK/ktable.log" >&2
  exit 1
fi
cat tests/debezium/target/surefire-reports/*.txt 2>/dev/null | grep -h "Tests run" || true
