#!/usr/bin/env bash
# Project-local stripe-mock (github.com/stripe/stripe-mock) for custsync's integration tests: Stripe's official
# mock server, which validates request parameters against Stripe's OpenAPI spec and answers fixed fixtures.
#
#   scripts/stripe-mock.sh up|start|wait|down|status|env
#
# Built from source with the Go toolchain (`go install github.com/stripe/stripe-mock@<version>`, once) into
# .services/stripe-mock/bin; a stamp file records the version, so a rebuild only happens when it changes.
# Listens for HTTP on 127.0.0.1:$CUSTSYNC_STRIPE_MOCK_PORT (default 29112) only. stripe-mock also opens an
# HTTPS listener on *:12112 (all interfaces) unless told otherwise, and -http-port binds all interfaces too,
# so it is started with `-http-addr 127.0.0.1:<port> -https-unix <socket under .services/stripe-mock/run>`:
# no TCP port besides the loopback HTTP one. Log in .services/stripe-mock/stripe-mock.log.
#
# Environment: CUSTSYNC_STRIPE_MOCK_VERSION (pinned below), CUSTSYNC_STRIPE_MOCK_PORT (29112),
# CUSTSYNC_STRIPE_MOCK_READY_TIMEOUT (30 s), CUSTSYNC_SERVICES_DIR (<project>/.services). Needs Go >= 1.22.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SERVICES_DIR="${CUSTSYNC_SERVICES_DIR:-$ROOT/.services}"
[[ "$SERVICES_DIR" == /* ]] || SERVICES_DIR="$PWD/$SERVICES_DIR"
MODULE="github.com/stripe/stripe-mock"
# Newest release on the Go module proxy when this was written (`go list -m -versions github.com/stripe/stripe-mock`).
SM_VERSION="${CUSTSYNC_STRIPE_MOCK_VERSION:-v0.203.0}"
SM_PORT="${CUSTSYNC_STRIPE_MOCK_PORT:-29112}"
READY_TIMEOUT="${CUSTSYNC_STRIPE_MOCK_READY_TIMEOUT:-30}"

SM_DIR="$SERVICES_DIR/stripe-mock"
BIN_DIR="$SM_DIR/bin"
BIN="$BIN_DIR/stripe-mock"
STAMP="$BIN_DIR/.custsync-stamp"
PID_FILE="$SM_DIR/stripe-mock.pid"
READY_FILE="$SM_DIR/stripe-mock.ready"   # pid of the server that passed the readiness probe
PORT_FILE="$SM_DIR/stripe-mock.port"     # the port the running server was started on
LOG_FILE="$SM_DIR/stripe-mock.log"
RUN_DIR="$SM_DIR/run"
# unix socket paths are limited to ~107 bytes; fall back to a per-checkout dir in /tmp for very deep clones.
if (( ${#RUN_DIR} + 12 > 107 )); then
  RUN_DIR="/tmp/custsync-stripe-mock-$(printf '%s' "$SM_DIR" | md5sum | cut -c1-12)"
fi
HTTPS_SOCKET="$RUN_DIR/https.sock"

log() { printf '[stripe-mock] %s\n' "$*" >&2; }
die() { printf '[stripe-mock] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$SM_PORT" =~ ^[0-9]+$ ]] || die "CUSTSYNC_STRIPE_MOCK_PORT must be a port number (got '$SM_PORT')"

stamp_content() { printf 'module=%s\nversion=%s\n' "$MODULE" "$SM_VERSION"; }

installed() { [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_content)" ]]; }

ensure_binary() {
  installed && return 0
  command -v go >/dev/null 2>&1 \
    || die "the Go toolchain (>= 1.22) is needed to build stripe-mock: install it (https://go.dev/dl/ or apt-get install golang-go)"
  if [[ ! "$SM_VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    # e.g. CUSTSYNC_STRIPE_MOCK_VERSION=latest: resolve it, so that the stamp names a real version.
    local resolved
    resolved="$(cd "$SM_DIR" && GO111MODULE=on timeout 120 go list -m -f '{{.Version}}' "$MODULE@$SM_VERSION")" \
      || die "cannot resolve $MODULE@$SM_VERSION"
    log "$SM_VERSION is $resolved"
    SM_VERSION="$resolved"
    installed && return 0
  fi
  log "building $MODULE@$SM_VERSION with $(go version | cut -d' ' -f3) into $BIN_DIR (go install, once per version)..."
  local tmp="$SM_DIR/bin.tmp" t0=$SECONDS
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Outside any module (cd), so that `go install pkg@version` ignores whatever go.mod is around.
  if ! (cd "$SM_DIR" && GO111MODULE=on GOBIN="$tmp" timeout 900 go install "$MODULE@$SM_VERSION") \
        >"$SM_DIR/go-install.log" 2>&1; then
    tail -n 40 "$SM_DIR/go-install.log" >&2
    die "go install $MODULE@$SM_VERSION failed (log: $SM_DIR/go-install.log)"
  fi
  [[ -x "$tmp/stripe-mock" ]] || die "no stripe-mock binary after go install (log: $SM_DIR/go-install.log)"
  rm -rf "$BIN_DIR"
  mv "$tmp" "$BIN_DIR"
  stamp_content >"$STAMP"
  log "built in $((SECONDS - t0))s ($(du -sh "$BIN" | cut -f1))"
}

pid_alive() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$BIN " || return 1
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Servers started from this very binary path whose pid file is gone (e.g. after `rm -rf .services/stripe-mock`
# while one ran): they would hold the port forever. Matched on the exact command line this script uses.
orphan_pids() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    [[ "$(tr '\0' ' ' 2>/dev/null <"$f")" == "$BIN -http-addr "* ]] && echo "$pid"
  done
  return 0
}

stop_pid() {
  local pid="$1" _
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "pid $pid still alive after 10s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

running_port() { cat "$PORT_FILE" 2>/dev/null || true; }

# Does a stripe-mock answer an authenticated API call on this port? (it sets a Stripe-Mock-Version header)
answers() {
  local headers
  headers="$(curl -s -o /dev/null -D - --max-time 3 -u sk_test_123: "http://127.0.0.1:$1/v1/customers?limit=1" 2>/dev/null)" \
    || return 1
  grep -q '^HTTP/[0-9.]* 200' <<<"$headers" && grep -qi '^stripe-mock-version:' <<<"$headers"
}

log_tail() {
  log "---- last lines of $LOG_FILE ----"
  tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
}

take_lock() {
  mkdir -p "$SERVICES_DIR"
  exec 9>"$SERVICES_DIR/stripe-mock.lock"
  flock -w 900 9 || die "another scripts/stripe-mock.sh is running (lock $SERVICES_DIR/stripe-mock.lock)"
}

# Build if needed and launch the server in the background; does not wait for readiness.
cmd_start() {
  command -v curl >/dev/null 2>&1 || die "curl is needed (readiness probe): apt-get install curl"
  take_lock
  if pid_alive; then
    local actual; actual="$(running_port)"
    [[ -z "$actual" || "$actual" == "$SM_PORT" ]] \
      || log "WARNING: already running on port $actual, not $SM_PORT (run 'down' then 'up' to change it)"
    return 0
  fi
  rm -f "$PID_FILE" "$READY_FILE" "$PORT_FILE"
  local orphan
  for orphan in $(orphan_pids); do log "stopping orphaned stripe-mock (pid $orphan, its pid file is gone)"; stop_pid "$orphan"; done
  port_open "$SM_PORT" && die "127.0.0.1:$SM_PORT is already in use by a process not started from $SM_DIR; set CUSTSYNC_STRIPE_MOCK_PORT or stop it"

  mkdir -p "$SM_DIR" "$RUN_DIR"
  ensure_binary
  rm -f "$HTTPS_SOCKET"   # left by a killed server; listening would fail with "address already in use"

  log "starting stripe-mock $SM_VERSION on 127.0.0.1:$SM_PORT (HTTPS only on unix socket $HTTPS_SOCKET)"
  echo "$SM_PORT" >"$PORT_FILE"
  # setsid: own session, so the server survives the caller's terminal / CI step process group. The inner bash
  # records its own pid and execs the server, so the pid file holds the server's pid. fd 9 (our lock) is closed
  # first so that the server does not inherit it. PORT is unset: stripe-mock would read it for default listeners.
  # shellcheck disable=SC2016
  (cd "$SM_DIR"; exec 9>&- </dev/null
   nohup setsid env -u PORT bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$BIN" -http-addr "127.0.0.1:$SM_PORT" -https-unix "$HTTPS_SOCKET" \
      >"$LOG_FILE" 2>&1 </dev/null &)
  local _
  for _ in $(seq 1 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  [[ -s "$PID_FILE" ]] || die "stripe-mock did not record its pid in $PID_FILE"
}

# Wait until the server answers an API call (bounded).
cmd_wait() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  local port; port="$(running_port)"; port="${port:-$SM_PORT}"
  if pid_alive && [[ "$(cat "$READY_FILE" 2>/dev/null)" == "$(cat "$PID_FILE")" ]] && answers "$port"; then
    log "already running on 127.0.0.1:$port (pid $(cat "$PID_FILE"))"
    return 0
  fi
  until answers "$port"; do
    pid_alive || { log_tail; die "stripe-mock exited during startup"; }
    (( SECONDS < deadline )) || { log_tail; die "stripe-mock does not answer on 127.0.0.1:$port after ${READY_TIMEOUT}s"; }
    sleep 0.2
  done
  cat "$PID_FILE" >"$READY_FILE"
  log "ready on http://127.0.0.1:$port"
}

cmd_up() {
  cmd_start
  cmd_wait
}

cmd_down() {
  take_lock
  if ! pid_alive; then rm -f "$PID_FILE" "$READY_FILE" "$PORT_FILE"; log "not running"; return 0; fi
  local pid; pid="$(cat "$PID_FILE")"
  log "stopping (pid $pid)"
  stop_pid "$pid"
  rm -f "$PID_FILE" "$READY_FILE" "$PORT_FILE" "$HTTPS_SOCKET"
  log "stopped"
}

cmd_status() {
  if pid_alive; then
    local port; port="$(running_port)"; port="${port:-$SM_PORT}"
    local state="running"; answers "$port" || state="starting (not answering yet)"
    echo "stripe-mock: $state (pid $(cat "$PID_FILE")) on http://127.0.0.1:$port, $MODULE $(sed -n 's/^version=//p' "$STAMP" 2>/dev/null)"
  else
    echo "stripe-mock: stopped ($(installed && echo "$SM_VERSION built in $BIN_DIR" || echo "$SM_VERSION not built yet"))"
    return 3
  fi
}

cmd_env() { echo "export STRIPE_MOCK_URL=http://127.0.0.1:$SM_PORT"; }

case "${1:-}" in
  up) cmd_up ;;
  start) cmd_start ;;
  wait) cmd_wait ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|start|wait|down|status|env" >&2; exit 2 ;;
esac
