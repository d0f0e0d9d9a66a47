#!/usr/bin/env bash
# Project-local Apache Kafka broker (KRaft, single node, combined broker+controller) for custsync.
#
#   scripts/kafka.sh up|start|wait|down|status|env
#   scripts/kafka.sh topics [TopicCommand args...]     e.g. scripts/kafka.sh topics --list
#   scripts/kafka.sh run <main class> [args...]         any tool from the broker's classpath
#
# No Debian/PyPI package ships Kafka, so the broker is assembled from Maven Central: scripts/kafka/pom.xml
# (org.apache.kafka:kafka_2.13 + kafka-tools + a log4j2 backend) is resolved with
# `mvn dependency:copy-dependencies` into .services/kafka/lib (once; a stamp file records version + pom hash).
# Listens on 127.0.0.1:$CUSTSYNC_KAFKA_PORT (default 29092), controller on $CUSTSYNC_KAFKA_CONTROLLER_PORT
# (default: broker port + 1). Data in .services/kafka/data, logs in .services/kafka/logs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CONF_SRC="$ROOT/scripts/kafka"
SERVICES_DIR="${CUSTSYNC_SERVICES_DIR:-$ROOT/.services}"
[[ "$SERVICES_DIR" == /* ]] || SERVICES_DIR="$PWD/$SERVICES_DIR"
KAFKA_VERSION="${CUSTSYNC_KAFKA_VERSION:-4.1.2}"
KAFKA_PORT="${CUSTSYNC_KAFKA_PORT:-29092}"
KAFKA_CONTROLLER_PORT="${CUSTSYNC_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_HEAP_OPTS="${CUSTSYNC_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
READY_TIMEOUT="${CUSTSYNC_KAFKA_READY_TIMEOUT:-90}"

KAFKA_DIR="$SERVICES_DIR/kafka"
LIB_DIR="$KAFKA_DIR/lib"
STAMP="$LIB_DIR/.custsync-stamp"
CONFIG_DIR="$KAFKA_DIR/config"
DATA_DIR="$KAFKA_DIR/data"
LOGS_DIR="$KAFKA_DIR/logs"
PID_FILE="$KAFKA_DIR/kafka.pid"
READY_FILE="$KAFKA_DIR/kafka.ready"   # pid of the broker that passed the readiness probe
CLUSTER_ID_FILE="$KAFKA_DIR/cluster.id"
SERVER_PROPERTIES="$CONFIG_DIR/server.properties"

log() { printf '[kafka] %s\n' "$*" >&2; }
die() { printf '[kafka] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [[ "$(id -u)" -eq 0 ]]; }
run_privileged() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"
  else command -v java || true
  fi
}

java_major() {
  local v
  v="$("$1" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')"
  echo "${v:-0}"
}

ensure_java_and_maven() {
  local need=()
  local java; java="$(java_bin)"
  if [[ -z "$java" ]] || (( $(java_major "$java") < 17 )); then need+=(openjdk-17-jre-headless); fi
  if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$(stamp_content)" ]]; then
    command -v mvn >/dev/null 2>&1 || need+=(maven)
  fi
  if (( ${#need[@]} )); then
    log "installing ${need[*]} (apt-get)..."
    run_privileged env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
    run_privileged env DEBIAN_FRONTEND=noninteractive timeout 900 \
      apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  java="$(java_bin)"
  [[ -n "$java" ]] || die "java not found"
  (( $(java_major "$java") >= 17 )) || die "Kafka 4.x needs Java >= 17 (found: $("$java" -version 2>&1 | head -n1))"
}

stamp_content() {
  printf 'kafka_version=%s\npom_sha256=%s\n' "$KAFKA_VERSION" "$(sha256sum "$CONF_SRC/pom.xml" | cut -d' ' -f1)"
}

ensure_jars() {
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_content)" ]]; then return 0; fi
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB_DIR (mvn dependency:copy-dependencies)..."
  local tmp="$KAFKA_DIR/lib.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! timeout 900 mvn -B -q -Dstyle.color=never -f "$CONF_SRC/pom.xml" \
        -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_DIR/mvn.log" 2>&1; then
    tail -n 40 "$KAFKA_DIR/mvn.log" >&2
    die "maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log: $KAFKA_DIR/mvn.log)"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "kafka_2.13-$KAFKA_VERSION.jar missing after maven run"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  stamp_content >"$STAMP"
  log "$(find "$LIB_DIR" -name '*.jar' | wc -l) jars, $(du -sh "$LIB_DIR" | cut -f1)"
}

# Run a Kafka CLI tool (short-lived JVM) from the broker classpath: run_tool <timeout seconds, 0 = none> <class> args...
run_tool() {
  local secs="$1"; shift
  local java; java="$(java_bin)"
  local t=(); (( secs > 0 )) && t=(timeout "$secs")
  "${t[@]}" "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF_SRC/log4j2-tools.xml" -cp "$LIB_DIR/*" "$@"
}

render_config() {
  mkdir -p "$CONFIG_DIR"
  sed -e "s|@PORT@|$KAFKA_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$DATA_DIR|g" \
      "$CONF_SRC/server.properties.template" >"$SERVER_PROPERTIES.tmp"
  mv "$SERVER_PROPERTIES.tmp" "$SERVER_PROPERTIES"
}

ensure_formatted() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  mkdir -p "$DATA_DIR"
  if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
    run_tool 60 kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE.tmp" || die "StorageTool random-uuid failed"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  log "formatting storage $DATA_DIR (cluster id $(cat "$CLUSTER_ID_FILE"))"
  run_tool 60 kafka.tools.StorageTool format -t "$(cat "$CLUSTER_ID_FILE")" \
    -c "$SERVER_PROPERTIES" --ignore-formatted >"$LOGS_DIR/format.log" 2>&1 \
    || { cat "$LOGS_DIR/format.log" >&2; die "StorageTool format failed"; }
}

pid_alive() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# The broker port named in the running broker's config (in case the env var changed since it started).
running_port() {
  sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$SERVER_PROPERTIES" 2>/dev/null || true
}

log_tail() {
  log "---- last lines of $LOGS_DIR/server.log / kafka.out ----"
  tail -n 40 "$LOGS_DIR/server.log" >&2 2>/dev/null || true
  tail -n 20 "$LOGS_DIR/kafka.out" >&2 2>/dev/null || true
}

take_lock() {
  mkdir -p "$SERVICES_DIR"
  exec 9>"$SERVICES_DIR/kafka.lock"
  flock -w 180 9 || die "another scripts/kafka.sh is running (lock $SERVICES_DIR/kafka.lock)"
}

# Install if needed and launch the broker in the background; does not wait for readiness.
cmd_start() {
  take_lock
  if pid_alive; then
    local actual; actual="$(running_port)"
    [[ -z "$actual" || "$actual" == "$KAFKA_PORT" ]] \
      || log "WARNING: already running on port $actual, not $KAFKA_PORT (run 'down' then 'up' to change it)"
    return 0
  fi
  rm -f "$PID_FILE" "$READY_FILE"
  port_open "$KAFKA_PORT" && die "127.0.0.1:$KAFKA_PORT is already in use by a process not started from $KAFKA_DIR; set CUSTSYNC_KAFKA_PORT or stop it"
  port_open "$KAFKA_CONTROLLER_PORT" && die "127.0.0.1:$KAFKA_CONTROLLER_PORT (controller) is already in use; set CUSTSYNC_KAFKA_CONTROLLER_PORT or stop it"

  mkdir -p "$KAFKA_DIR" "$LOGS_DIR" "$DATA_DIR"
  ensure_java_and_maven
  ensure_jars
  render_config
  ensure_formatted

  local java; java="$(java_bin)"
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT, data $DATA_DIR)"
  # setsid: own session, so the broker survives the caller's terminal / CI step process group.
  # The inner bash records its own pid and then execs java, so the pid file holds the JVM's pid.
  # The subshell exits right after forking, and fd 9 (our lock) is closed first so the broker does not inherit it.
  # shellcheck disable=SC2086,SC2016
  (cd "$KAFKA_DIR"; exec 9>&- </dev/null
   nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$java" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOGS_DIR" -Dlog4j2.configurationFile="$CONF_SRC/log4j2.xml" \
      -cp "$LIB_DIR/*" kafka.Kafka "$SERVER_PROPERTIES" \
      >"$LOGS_DIR/kafka.out" 2>&1 </dev/null &)
  local _
  for _ in $(seq 1 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  [[ -s "$PID_FILE" ]] || die "broker did not record its pid in $PID_FILE"
}

# Wait until the broker accepts connections and answers a metadata request (bounded).
cmd_wait() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  local port; port="$(running_port)"; port="${port:-$KAFKA_PORT}"
  if pid_alive && [[ "$(cat "$READY_FILE" 2>/dev/null)" == "$(cat "$PID_FILE")" ]] && port_open "$port"; then
    log "already running on 127.0.0.1:$port (pid $(cat "$PID_FILE"))"
    return 0
  fi
  until port_open "$port"; do
    pid_alive || { log_tail; die "broker process exited during startup"; }
    (( SECONDS < deadline )) || { log_tail; die "broker not listening on 127.0.0.1:$port after ${READY_TIMEOUT}s"; }
    sleep 0.3
  done
  local out
  until out="$(run_tool "$(( deadline - SECONDS > 20 ? 20 : (deadline - SECONDS < 5 ? 5 : deadline - SECONDS) ))" \
                 org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" --list 2>&1)"; do
    pid_alive || { log_tail; die "broker process exited during startup"; }
    (( SECONDS < deadline )) || { printf '%s\n' "$out" >&2; log_tail; die "broker does not answer metadata requests after ${READY_TIMEOUT}s"; }
    sleep 1
  done
  cat "$PID_FILE" >"$READY_FILE"
  log "ready on 127.0.0.1:$port"
}

cmd_up() {
  cmd_start
  cmd_wait
}

cmd_down() {
  take_lock
  if ! pid_alive; then rm -f "$PID_FILE"; log "not running"; return 0; fi
  local pid; pid="$(cat "$PID_FILE")"
  log "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local _
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 30s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PID_FILE" "$READY_FILE"
  log "stopped"
}

cmd_status() {
  if pid_alive; then
    local port; port="$(running_port)"
    local state="running"; port_open "$port" || state="starting (port not open yet)"
    echo "kafka:    $state (pid $(cat "$PID_FILE")) on 127.0.0.1:$port, Kafka $KAFKA_VERSION, data $DATA_DIR"
  else
    echo "kafka:    stopped (data $DATA_DIR$([[ -f "$DATA_DIR/meta.properties" ]] || echo ', not formatted'))"
    return 3
  fi
}

cmd_env() { echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"; }

case "${1:-}" in
  up) cmd_up ;;
  start) cmd_start ;;
  wait) cmd_wait ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  topics) shift; [[ -f "$STAMP" ]] || die "not installed; run 'up' first"
          run_tool 0 org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" "$@" ;;
  run) shift; [[ -f "$STAMP" ]] || die "not installed; run 'up' first"; run_tool 0 "$@" ;;
  *) echo "usage: $0 up|start|wait|down|status|env|topics [args]|run <main class> [args]" >&2; exit 2 ;;
esac
