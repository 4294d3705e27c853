#!/usr/bin/env bash
# Start a real schema registry with Confluent's REST API for ktable's format tests:
# Apicurio Registry (in memory), built once from Maven Central jars by
# scripts/registry/pom.xml into the cache, without Docker.
#
#   eval "$(scripts/registry-start.sh)"   # sets KTABLE_TEST_REGISTRY_URL
#   scripts/registry-stop.sh
#
# KTABLE_TEST_REGISTRY_URL is the Confluent-compatible API's base URL
# (http://127.0.0.1:PORT/apis/ccompat/v7); Apicurio's own API, which its Kafka
# Connect converters speak, is at http://127.0.0.1:PORT/apis/registry/v2.
# Idempotent: a registry this script started and that still answers is reused.
# Progress goes to stderr; stdout carries only the variable.
#
# Env: KTABLE_REGISTRY_PORT (18081), KTABLE_CACHE (~/.cache/ktable),
#      KTABLE_REGISTRY_DIR (/tmp/ktable-registry), KTABLE_REGISTRY_START_TIMEOUT (90 s).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT=${KTABLE_REGISTRY_PORT:-18081}
CACHE=${KTABLE_CACHE:-$HOME/.cache/ktable}
STATE=${KTABLE_REGISTRY_DIR:-/tmp/ktable-registry}
TIMEOUT=${KTABLE_REGISTRY_START_TIMEOUT:-90}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
PID_FILE=$STATE/registry.pid
LOG=$STATE/registry.log
URL=http://127.0.0.1:$PORT

log() { echo "registry-start: $*" >&2; }
die() {
  log "ERROR: $*"
  [[ -f $LOG ]] && { log "last lines of $LOG:"; tail -n 25 "$LOG" >&2; }
  exit 1
}

# 1. The runnable registry, built once per version of its project files (the
#    key), into the cache; the .complete marker guards against a half copy.
KEY=$(cat "$HERE/registry/pom.xml" "$HERE"/registry/src/main/java/ktable/registry/*.java | sha256sum | cut -c1-12)
APP=$CACHE/schema-registry-$KEY
if [[ ! -f $APP/.complete ]]; then
  command -v mvn >/dev/null || die "mvn not found (needed once to build the registry)"
  log "building Apicurio Registry from Maven Central jars into $APP"
  rm -rf "$APP.tmp" && mkdir -p "$APP.tmp" && cp -r "$HERE/registry/." "$APP.tmp/project"
  mvn -q -B -U -f "$APP.tmp/project/pom.xml" -Dmaven.repo.local="$CACHE/m2" package \
    >"$APP.tmp/mvn.log" 2>&1 || { cat "$APP.tmp/mvn.log" >&2; die "the registry's build failed"; }
  mv "$APP.tmp/project/target/lib" "$APP.tmp/lib"
  mv "$APP.tmp/project/target/"*-runner.jar "$APP.tmp/registry.jar"
  rm -rf "$APP.tmp/project" "$APP.tmp/mvn.log" && touch "$APP.tmp/.complete"
  rm -rf "$APP" && mv "$APP.tmp" "$APP"
fi

answers() {
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "$URL/apis/ccompat/v7/subjects" 2>/dev/null
}
registry_pid() {
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'schema-registry' && echo "$pid"
}
done_ok() { echo "KTABLE_TEST_REGISTRY_URL=$URL/apis/ccompat/v7"; }

# 2. Reuse the registry started before if it still answers.
if pid=$(registry_pid) && answers; then
  log "registry already running (pid $pid)"
  done_ok
  exit 0
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "port $PORT is already in use by another process (set KTABLE_REGISTRY_PORT)"
fi

# 3. Start it detached (setsid: it outlives the caller's process group); the inner
#    sh writes its pid, then execs java, so the pid is the JVM's.
mkdir -p "$STATE" && rm -f "$PID_FILE"
log "starting the schema registry on $URL (log: $LOG)"
# shellcheck disable=SC2016  # $$ and $0 are the inner sh's
setsid sh -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
  "$JAVA" -Xms64m -Xmx384m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
  -Dquarkus.log.level=WARN -jar "$APP/registry.jar" >"$LOG" 2>&1 </dev/null &
deadline=$((SECONDS + TIMEOUT))
until answers; do
  [[ -s $PID_FILE ]] && ! registry_pid >/dev/null && die "the registry exited during start-up"
  ((SECONDS < deadline)) || die "the registry did not answer on $URL within ${TIMEOUT}s"
  sleep 0.5
done
log "registry ready (pid $(cat "$PID_FILE"))"
done_ok
