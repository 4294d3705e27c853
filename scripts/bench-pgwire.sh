#!/usr/bin/env bash
# ktable against PostgreSQL over the PostgreSQL wire protocol, with pgbench as the
# client of both, end to end on one machine:
#
#   scripts/bench-pgwire.sh                  # 1,000,000 rows, 3 runs of 20 s per test
#   BENCH_RUNS=5 BENCH_SECONDS=30 scripts/bench-pgwire.sh
#
# 1. installs what is missing (PostgreSQL server and pgbench, Java and Maven for
#    the broker, a C toolchain for librdkafka; apt-get, as root);
# 2. builds ktable and the topic loader (bench profile);
# 3. generates BENCH_ROWS users and loads the same rows into a compacted Kafka topic
#    on a real Apache Kafka (scripts/kafka-start.sh) and into a PostgreSQL table
#    with a TEXT primary key (COPY, VACUUM ANALYZE, pg_prewarm);
# 4. starts `ktable serve` on that topic and waits until the table is restored;
# 5. measures, BENCH_RUNS times, the servers taking turns within each run:
#    prepared point lookups (benches/pgwire/lookup.sql) at 1 client and at 8
#    clients for BENCH_SECONDS each (TPS, p50 and p99 latency from pgbench's
#    per-transaction log; then TPS alone, without the log), literal and unnamed
#    lookups (-M simple, -M extended), a full-scan GROUP BY
#    (benches/pgwire/aggregate.sql) BENCH_AGG_QUERIES times (median latency), and
#    prepared lookups at 1 client
#    while BENCH_LOAD_CLIENTS other clients run that aggregate without pause
#    (lookup p50 and p99 under analytical load);
# 6. prints the medians over the runs as a Markdown table with the ratio
#    ktable / PostgreSQL, and stops everything it started.
#
# Env: BENCH_ROWS (1000000), BENCH_RUNS (3), BENCH_SECONDS (20), BENCH_WARMUP_SECONDS
#      (5), BENCH_AGG_QUERIES (20), BENCH_LOAD_CLIENTS (16), BENCH_PG_PORT (54391), BENCH_KTABLE_PORT (54392),
#      BENCH_DIR (/tmp/ktable-bench-pgwire; logs and results stay there),
#      BENCH_PG_USER (postgres: the account PostgreSQL runs as when this runs as root),
#      BENCH_KEEP=1 keeps the data files and the PostgreSQL data dir,
#      KTABLE_CACHE, CARGO_TARGET_DIR and the scripts/kafka-start.sh variables.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROWS=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP_SECONDS:-5}
AGG_QUERIES=${BENCH_AGG_QUERIES:-20}
LOAD_CLIENTS=${BENCH_LOAD_CLIENTS:-16}
PG_PORT=${BENCH_PG_PORT:-54391}
KT_PORT=${BENCH_KTABLE_PORT:-54392}
WORK=${BENCH_DIR:-/tmp/ktable-bench-pgwire}
PG_USER=${BENCH_PG_USER:-postgres}
PARTITIONS=4
export KTABLE_CACHE=${KTABLE_CACHE:-$HOME/.cache/ktable}
# The same target dir as .ci/run and the benches: the bench profile's dependencies
# are usually built there already.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$KTABLE_CACHE/target}

log() { echo "bench-pgwire: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- what runs, and how it is stopped ---------------------------------------------

ktable_pid=
pg_started=
kafka_started=
topic=
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $ktable_pid ]]; then
    kill "$ktable_pid" 2>/dev/null || true
    wait "$ktable_pid" 2>/dev/null || true
  fi
  if [[ -n $pg_started ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [[ -n $kafka_started ]]; then
    scripts/kafka-stop.sh || true
  elif [[ -n $topic && -n ${KAFKA_LIBS:-} ]]; then
    # Someone else's broker: leave it running, but without our 100 MB topic.
    java -Xmx256m -Dktable.log.level=WARN -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
      -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" \
      --delete --topic "$topic" >/dev/null 2>&1 || log "could not delete topic $topic"
  fi
  if [[ -z ${BENCH_KEEP:-} && -d $WORK ]]; then
    rm -rf "$WORK/pg" "$WORK/users.csv" "$WORK/users.tsv" "$WORK/pgbench"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PostgreSQL refuses to run as root: when we are root, its server and tools run as
# an unprivileged account (the Debian package creates `postgres`).
as_pg() {
  if ((EUID == 0)); then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

# --- 1. prerequisites -------------------------------------------------------------

# The PostgreSQL bin dir holding both the server and pgbench: pg_config's if it has
# them (Debian's pg_config names the versioned dir), else the newest under
# /usr/lib/postgresql.
find_pg_bin() {
  local dir
  if command -v pg_config >/dev/null; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    [[ -x $dir/postgres && -x $dir/pgbench && -x $dir/initdb ]] && { echo "$dir"; return; }
  fi
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    [[ -x $dir/postgres && -x $dir/pgbench && -x $dir/initdb ]] && { echo "$dir"; return; }
  done
  return 1
}

need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
command -v make >/dev/null || need_apt+=(make)
[[ -e /usr/include/zlib.h ]] || need_apt+=(zlib1g-dev)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v psql >/dev/null || need_apt+=(postgresql-client)
find_pg_bin >/dev/null || need_apt+=(postgresql)
if ((${#need_apt[@]})); then
  ((EUID == 0)) || die "missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run as root"
  log "installing ${need_apt[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >&2
fi
command -v cargo >/dev/null || die "cargo not found (install a Rust toolchain with rustup)"
PG_BIN=$(find_pg_bin) || die "no PostgreSQL server with pgbench found (looked at pg_config --bindir and /usr/lib/postgresql/*/bin)"
if ((EUID == 0)); then
  id "$PG_USER" >/dev/null 2>&1 || die "user $PG_USER does not exist (PostgreSQL cannot run as root; set BENCH_PG_USER)"
fi
PGBENCH=$PG_BIN/pgbench
PSQL=$PG_BIN/psql
for port in "$PG_PORT" "$KT_PORT"; do
  port_in_use "$port" && die "port $port is already in use (set BENCH_PG_PORT / BENCH_KTABLE_PORT)"
done

if [[ -e $WORK && ! -f $WORK/.bench-pgwire ]]; then
  die "$WORK exists and was not made by this script; remove it or set BENCH_DIR"
fi
rm -rf "$WORK"
mkdir -p "$WORK/pgbench"
touch "$WORK/.bench-pgwire"

# --- 2. build ---------------------------------------------------------------------

# The loader example is built in the same command for a second reason: building an
# example turns on the dev-dependencies' features (rand's, used by DataFusion too),
# as `cargo bench` does, so the bench profile's cached DataFusion is reused. The
# binary alone resolves rand with fewer features and recompiles DataFusion (~20 min).
log "building ktable and the loader (cargo build --profile bench, target $CARGO_TARGET_DIR)"
build_start=$SECONDS
cargo build --profile bench --bin ktable --example load_benchmark_topic >&2
log "build took $((SECONDS - build_start)) s"
KTABLE=$CARGO_TARGET_DIR/release/ktable
LOADER=$CARGO_TARGET_DIR/release/examples/load_benchmark_topic

# --- 3. data: Kafka and PostgreSQL --------------------------------------------------

log "generating $ROWS users"
awk -v rows="$ROWS" -v csv="$WORK/users.csv" -v tsv="$WORK/users.tsv" -f benches/pgwire/gen-users.awk

# A broker that was already running (another developer's, tests) is used and left
# running; one we start is stopped at exit.
if pid=$(scripts/kafka-running.sh); then
  log "using the Kafka broker already running (pid $pid)"
else
  kafka_started=1
fi
eval "$(scripts/kafka-start.sh)"
topic=bench-pgwire-users-$(date +%s)
log "loading $topic ($PARTITIONS partitions) on $KAFKA_BROKERS"
"$LOADER" "$KAFKA_BROKERS" "$topic" "$PARTITIONS" <"$WORK/users.tsv"

PGDIR=$WORK/pg
PGDATA=$PGDIR/data
PGLOG=$WORK/postgres.log
mkdir -p "$PGDIR"
touch "$PGLOG"
if ((EUID == 0)); then chown "$PG_USER" "$PGDIR" "$PGLOG"; fi
log "initializing PostgreSQL ($PG_BIN) in $PGDATA"
# C collation: the key index compares bytes, as ktable's does.
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
# The settings the results are stated with. Everything not here is PostgreSQL's
# default (parallel query with 2 workers per gather, JIT, work_mem 4MB...).
cat >>"$PGDATA/postgresql.conf" <<EOF

# scripts/bench-pgwire.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGDIR'
# Holds the whole table and its index (about 150 MB), as ktable holds its table in memory.
shared_buffers = 1GB
# The benchmark only reads; durability settings only slow the load down.
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
EOF
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w start >/dev/null \
  || { tail -n 20 "$PGLOG" >&2; die "PostgreSQL did not start"; }
pg_started=1

pg() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres "$@"; }
kt() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$KT_PORT" -U ktable -d ktable "$@"; }

log "loading PostgreSQL (COPY, VACUUM ANALYZE, pg_prewarm)"
pg -f benches/pgwire/postgres.sql
pg -c "COPY users FROM STDIN (FORMAT csv)" <"$WORK/users.csv"
pg -c "VACUUM ANALYZE users"
pg -c "CHECKPOINT"
# Into shared_buffers before the first measurement, as ktable's table is in memory
# from its first query on.
pg -c "CREATE EXTENSION pg_prewarm" -c "SELECT pg_prewarm('users')" -c "SELECT pg_prewarm('users_pkey')" >/dev/null
pg_size=$(pg -Atc "SELECT pg_size_pretty(pg_total_relation_size('users'))")
# pgbench prepares the lookup with an untyped parameter; the plan must be the
# primary-key index, or the comparison would be against a sequential scan.
plan=$(pg -Atc "PREPARE q AS SELECT name, email, age, city, score FROM users WHERE id = \$1" \
  -c "EXPLAIN (COSTS OFF) EXECUTE q('123')")
grep -q 'Index Scan using users_pkey' <<<"$plan" || die "PostgreSQL does not use its primary key for the lookup: $plan"

# --- 4. ktable --------------------------------------------------------------------

sed "s/@TOPIC@/$topic/" benches/pgwire/ktable.sql >"$WORK/ktable.sql"
# With real brokers ktable requires authentication (SCRAM-SHA-256). PostgreSQL here
# trusts local connections and ignores the password; pgbench and psql send it to both.
printf '[[users]]\nname = "ktable"\npassword = "bench"\n' >"$WORK/ktable.toml"
export PGPASSWORD=bench
log "starting ktable on 127.0.0.1:$KT_PORT, restoring $topic"
restore_start=$(date +%s.%N)
RUST_LOG=${RUST_LOG:-info,rdkafka=warn} "$KTABLE" serve --brokers "$KAFKA_BROKERS" --sql "$WORK/ktable.sql" --config "$WORK/ktable.toml" \
  --listen "127.0.0.1:$KT_PORT" --group-id "ktable-bench-pgwire" >"$WORK/ktable.log" 2>&1 &
ktable_pid=$!
deadline=$((SECONDS + 600))
until [[ $(kt -Atc "SELECT ready, rows FROM ktable_tables WHERE name = 'users'" 2>/dev/null) =~ ^(t|true)\|$ROWS$ ]]; do
  kill -0 "$ktable_pid" 2>/dev/null || { tail -n 30 "$WORK/ktable.log" >&2; die "ktable exited"; }
  ((SECONDS < deadline)) || { tail -n 30 "$WORK/ktable.log" >&2; die "ktable not restored to $ROWS rows after 600 s"; }
  sleep 0.2
done
restore_seconds=$(awk -v s="$restore_start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
ktable_rss_mib=$(awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$ktable_pid/status")
log "ktable restored $ROWS rows in $restore_seconds s (includes start-up), RSS $ktable_rss_mib MiB"

# Both servers must hold the same table, or the comparison means nothing.
check="SELECT city, count(*), sum(age) FROM users GROUP BY city ORDER BY city"
lookup="SELECT name, email, age, city FROM users WHERE id = '$((ROWS * 2 / 3))'"
for query in "$check" "$lookup"; do
  [[ $(pg -Atc "$query") == "$(kt -Atc "$query")" ]] \
    || die "PostgreSQL and ktable disagree on: $query"$'\n'"$(pg -Atc "$query")"$'\n---\n'"$(kt -Atc "$query")"
done

# --- 5. measurements ----------------------------------------------------------------

# pgbench NAME PORT USER -- pgbench options: runs pgbench with a per-transaction
# log; prints "TPS P50_MS P99_MS MEDIAN_MS". A failing pgbench (protocol error, a
# query the server rejects) stops the benchmark with pgbench's own output.
bench() {
  local name=$1 port=$2 user=$3
  shift 4
  local out=$WORK/pgbench/$name.out prefix=$WORK/pgbench/$name
  rm -f "$prefix".log*
  local logging=(--log --log-prefix="$prefix.log")
  [[ -n ${NOLOG:-} ]] && logging=()
  if ! "$PGBENCH" -n -h 127.0.0.1 -p "$port" -U "$user" -M "${MODE:-prepared}" "${logging[@]}" \
    "$@" "$user" >"$out" 2>&1; then
    log "pgbench $name failed:"; cat "$out" >&2
    die "pgbench against port $port failed"
  fi
  if grep -E '^number of failed transactions: [1-9]' "$out" >&2; then
    cat "$out" >&2; die "pgbench $name had failed transactions"
  fi
  local tps
  tps=$(awk '/^tps = / { print $3; exit }' "$out")
  if [[ -n ${NOLOG:-} ]]; then
    echo "$tps 0 0 0" # no latencies without the log
    return
  fi
  # Field 3 of each log line is the transaction's latency in microseconds.
  cat "$prefix".log* | awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n | awk -v tps="$tps" '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "no transactions logged" > "/dev/stderr"; exit 1 }
      # nearest rank, as benches/support quantile()
      printf "%s %.3f %.3f %.3f\n", tps, v[int((NR - 1) * 0.5 + 0.5) + 1] / 1000,
        v[int((NR - 1) * 0.99 + 0.5) + 1] / 1000, v[int((NR - 1) * 0.5 + 0.5) + 1] / 1000
    }'
  rm -f "$prefix".log*
}

# server NAME -> port and user
server_port() { if [[ $1 == ktable ]]; then echo "$KT_PORT"; else echo "$PG_PORT"; fi; }
server_user() { if [[ $1 == ktable ]]; then echo ktable; else echo postgres; fi; }

lookup_test() { # SERVER CLIENTS THREADS SECONDS TAG
  bench "$5-$1-c$2" "$(server_port "$1")" "$(server_user "$1")" -- \
    -c "$2" -j "$3" -T "$4" -D rows="$ROWS" -f benches/pgwire/lookup.sql
}
# The same, TPS only: writing a log line per transaction costs pgbench enough CPU
# (on the cores the servers use) to be the limit at 8 clients.
unlogged_lookup_test() { # SERVER CLIENTS THREADS SECONDS TAG
  NOLOG=1 bench "$5-$1-nolog-c$2" "$(server_port "$1")" "$(server_user "$1")" -- \
    -c "$2" -j "$3" -T "$4" -D rows="$ROWS" -f benches/pgwire/lookup.sql
}
# The same lookups as drivers without prepared statements send them: the key as a
# literal in the text on the simple protocol (psql, BI tools), or an unnamed
# statement parsed anew at every execution (-M extended: psycopg without prepare,
# most ORMs).
literal_lookup_test() { # SERVER CLIENTS THREADS SECONDS TAG
  MODE=simple bench "$5-$1-simple-c$2" "$(server_port "$1")" "$(server_user "$1")" -- \
    -c "$2" -j "$3" -T "$4" -D rows="$ROWS" -f benches/pgwire/lookup_literal.sql
}
unnamed_lookup_test() { # SERVER CLIENTS THREADS SECONDS TAG
  MODE=extended bench "$5-$1-extended-c$2" "$(server_port "$1")" "$(server_user "$1")" -- \
    -c "$2" -j "$3" -T "$4" -D rows="$ROWS" -f benches/pgwire/lookup.sql
}
aggregate_test() { # SERVER QUERIES TAG
  bench "$3-$1-agg" "$(server_port "$1")" "$(server_user "$1")" -- \
    -c 1 -j 1 -t "$2" -f benches/pgwire/aggregate.sql
}

# SERVER SECONDS TAG: lookups at 1 client while LOAD_CLIENTS clients run the
# aggregate back to back on the same server; the load starts first and outlasts
# the lookups.
lookup_under_load_test() {
  local port user load_out=$WORK/pgbench/$3-$1-load.out
  port=$(server_port "$1")
  user=$(server_user "$1")
  "$PGBENCH" -n -h 127.0.0.1 -p "$port" -U "$user" -M prepared -c "$LOAD_CLIENTS" -j 2 \
    -T $(($2 + 4)) -f benches/pgwire/aggregate.sql "$user" >"$load_out" 2>&1 &
  local load_pid=$!
  sleep 2
  bench "$3-$1-under-load" "$port" "$user" -- -c 1 -j 1 -T "$2" -D rows="$ROWS" -f benches/pgwire/lookup.sql
  wait "$load_pid" || { cat "$load_out" >&2; die "the aggregate load against port $port failed"; }
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "warming up both servers (${WARMUP} s of lookups, 3 aggregates each)"
for server in postgres ktable; do
  lookup_test "$server" 8 2 "$WARMUP" warmup >/dev/null
  aggregate_test "$server" 3 warmup >/dev/null
done

# One line per measurement: run server test tps p50_ms p99_ms median_ms. The servers
# take turns within every run so that the machine's slow and fast minutes (it is
# shared) fall on both.
results=$WORK/results.tsv
: >"$results"
# RUN SERVER TEST COMMAND...: appends the command's figures to the results. The
# assignment (not a bare $(...)) makes a failing measurement stop the script.
record() {
  local figures
  figures=$("${@:4}")
  echo "$1 $2 $3 $figures" >>"$results"
}
for ((run = 1; run <= RUNS; run++)); do
  for server in postgres ktable; do
    log "run $run/$RUNS: $server, lookups at 1 client (${DURATION} s)"
    record "$run" "$server" lookup-c1 lookup_test "$server" 1 1 "$DURATION" "run$run"
  done
  for server in ktable postgres; do
    log "run $run/$RUNS: $server, lookups at 8 clients (${DURATION} s)"
    record "$run" "$server" lookup-c8 lookup_test "$server" 8 2 "$DURATION" "run$run"
  done
  for clients in 1 8; do
    for server in ktable postgres; do
      log "run $run/$RUNS: $server, lookups at $clients client(s) without the per-transaction log"
      record "$run" "$server" nolog-c$clients unlogged_lookup_test "$server" "$clients" $((clients > 1 ? 2 : 1)) "$DURATION" "run$run"
    done
  done
  for clients in 1 8; do
    for server in postgres ktable; do
      log "run $run/$RUNS: $server, literal lookups (simple protocol) at $clients client(s)"
      record "$run" "$server" simple-c$clients literal_lookup_test "$server" "$clients" 2 "$DURATION" "run$run"
      log "run $run/$RUNS: $server, unnamed-statement lookups at $clients client(s)"
      record "$run" "$server" extended-c$clients unnamed_lookup_test "$server" "$clients" 2 "$DURATION" "run$run"
    done
  done
  for server in postgres ktable; do
    log "run $run/$RUNS: $server, $AGG_QUERIES aggregates"
    record "$run" "$server" aggregate aggregate_test "$server" "$AGG_QUERIES" "run$run"
  done
  for server in ktable postgres; do
    log "run $run/$RUNS: $server, lookups at 1 client under $LOAD_CLIENTS aggregate clients (${DURATION} s)"
    record "$run" "$server" under-load lookup_under_load_test "$server" "$DURATION" "run$run"
  done
done

# --- 6. report --------------------------------------------------------------------

# median SERVER TEST COLUMN (4 = tps, 5 = p50, 6 = p99, 7 = median latency)
median() {
  awk -v s="$1" -v t="$2" -v c="$3" '$2 == s && $3 == t { print $c }' "$results" | sort -g \
    | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
runs_of() { # SERVER TEST COLUMN FORMAT
  awk -v s="$1" -v t="$2" -v c="$3" -v f="$4" '$2 == s && $3 == t { printf "%s" f, sep, $c; sep = ", " }' "$results"
}
row() { # LABEL TEST COLUMN FORMAT (TPS as integers, latencies in ms)
  local k p
  k=$(median ktable "$2" "$3")
  p=$(median postgres "$2" "$3")
  awk -v l="$1" -v k="$k" -v p="$p" -v f="$4" \
    -v kr="$(runs_of ktable "$2" "$3" "$4")" -v pr="$(runs_of postgres "$2" "$3" "$4")" \
    'BEGIN { printf "| %s | " f " | " f " | **%.2f** | %s / %s |\n", l, k, p, k / p, kr, pr }'
}

pg_version=$(pg -Atc "SHOW server_version" | awk '{ print $1 }')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=
if git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | grep -q .; then dirty=" + uncommitted changes"; fi
{
  echo
  echo "pgwire benchmark, $(date -u +%Y-%m-%dT%H:%MZ): ktable $commit$dirty vs PostgreSQL $pg_version"
  echo "machine: $(nproc) CPUs ($cpu), $mem; pgbench, Kafka and both servers on the same machine;"
  echo "load average before the measurements: $load_before"
  echo "$ROWS rows (PostgreSQL table + index $pg_size; ktable RSS $ktable_rss_mib MiB after a $restore_seconds s restore);"
  echo "medians of $RUNS runs; lookups ${DURATION} s each (pgbench -M prepared unless named), aggregate $AGG_QUERIES queries per run"
  echo
  echo "| measurement | ktable | PostgreSQL | ktable / PostgreSQL | runs (ktable / PostgreSQL) |"
  echo "|---|---|---|---|---|"
  row "lookup, 1 client: TPS" lookup-c1 4 "%.0f"
  row "lookup, 1 client: p50 ms" lookup-c1 5 "%.3f"
  row "lookup, 1 client: p99 ms" lookup-c1 6 "%.3f"
  row "lookup, 8 clients: TPS" lookup-c8 4 "%.0f"
  row "lookup, 8 clients: p50 ms" lookup-c8 5 "%.3f"
  row "lookup, 8 clients: p99 ms" lookup-c8 6 "%.3f"
  row "lookup, 1 client, no per-transaction log: TPS" nolog-c1 4 "%.0f"
  row "lookup, 8 clients, no per-transaction log: TPS" nolog-c8 4 "%.0f"
  row "literal lookup (-M simple), 1 client: TPS" simple-c1 4 "%.0f"
  row "literal lookup (-M simple), 8 clients: TPS" simple-c8 4 "%.0f"
  row "unnamed statement (-M extended), 1 client: TPS" extended-c1 4 "%.0f"
  row "unnamed statement (-M extended), 8 clients: TPS" extended-c8 4 "%.0f"
  row "GROUP BY city, all rows: median ms" aggregate 7 "%.2f"
  row "lookup under $LOAD_CLIENTS aggregates: TPS" under-load 4 "%.0f"
  row "lookup under $LOAD_CLIENTS aggregates: p50 ms" under-load 5 "%.3f"
  row "lookup under $LOAD_CLIENTS aggregates: p99 ms" under-load 6 "%.3f"
  echo
  echo "raw results: $results; server logs: $WORK/ktable.log, $PGLOG"
} | tee "$WORK/results.md"
