#!/usr/bin/env bash
# Project-local PostgreSQL for custsync development and tests.
#
#   scripts/postgres.sh up|down|status|env|psql [db] [psql args...]
#
# Uses Debian's `postgresql` package (installed with apt-get if missing) but never the system cluster:
# a private cluster is initdb'ed into .services/postgres/data, listens on 127.0.0.1:$CUSTSYNC_PG_PORT only
# (default 25432), keeps its unix socket in .services/postgres/run and logs to .services/postgres/log/.
# When run as root the server runs as the `postgres` OS user (PostgreSQL refuses to run as root).
# Role custsync/custsync owns the databases custsync and custsync_test (scram-sha-256 over TCP).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SERVICES_DIR="${CUSTSYNC_SERVICES_DIR:-$ROOT/.services}"
[[ "$SERVICES_DIR" == /* ]] || SERVICES_DIR="$PWD/$SERVICES_DIR"
PG_PORT="${CUSTSYNC_PG_PORT:-25432}"
PG_USER="custsync"
PG_PASSWORD="custsync"
PG_DATABASES="${CUSTSYNC_PG_DATABASES:-custsync custsync_test}"
PG_MAIN_DB="${PG_DATABASES%% *}"

PG_DIR="$SERVICES_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_LOG_DIR="$PG_DIR/log"
PG_LOG="$PG_LOG_DIR/postgresql.log"
PG_SOCK_DIR="$PG_DIR/run"
PG_OS_USER="postgres"   # only used when we are root

log() { printf '[postgres] %s\n' "$*" >&2; }
die() { printf '[postgres] ERROR: %s\n' "$*" >&2; exit 1; }

# unix socket paths are limited to ~107 bytes; fall back to a per-checkout dir in /tmp for very deep clones.
if (( ${#PG_SOCK_DIR} + 20 > 107 )); then
  PG_SOCK_DIR="/tmp/custsync-pg-$(printf '%s' "$PG_DIR" | md5sum | cut -c1-12)"
fi

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# Run a PostgreSQL server-side binary as the OS user owning the cluster.
as_pg() {
  if is_root; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

run_privileged() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

find_pg_bin() {
  local ver
  if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    ver="$(cat "$PG_DATA/PG_VERSION")"
    [[ -x "/usr/lib/postgresql/$ver/bin/postgres" ]] \
      || die "$PG_DATA was created by PostgreSQL $ver, whose binaries are not installed (/usr/lib/postgresql/$ver/bin). Install postgresql-$ver or delete $PG_DIR."
    echo "/usr/lib/postgresql/$ver/bin"
    return 0
  fi
  ver="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null \
           | cut -d/ -f5 | sort -V | tail -n1 || true)"
  [[ -n "$ver" ]] && echo "/usr/lib/postgresql/$ver/bin"
  return 0
}

install_postgres() {
  log "PostgreSQL server binaries not found; installing Debian package 'postgresql' (apt-get)..."
  local had_cluster_tools=0
  command -v pg_lsclusters >/dev/null 2>&1 && had_cluster_tools=1
  run_privileged env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
  run_privileged env DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # The package creates and starts a system cluster (/var/lib/postgresql/<ver>/main, port 5432) that we do not
  # use. If it was created by this very install, stop it so it does not sit there taking memory.
  if (( had_cluster_tools == 0 )) && command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk '$2 == "main" && $4 == "online" {print $1}' | while read -r v; do
      log "stopping the system cluster $v/main created by the package install (not used by custsync)"
      run_privileged pg_ctlcluster "$v" main stop || true
    done
  fi
}

# Everything between / and $PG_DIR must be traversable (x) by the server's OS user.
ensure_traversable() {
  is_root || return 0
  local d="$PG_DIR"
  local dirs=()
  while [[ "$d" != "/" && -n "$d" ]]; do dirs=("$d" "${dirs[@]}"); d="$(dirname "$d")"; done
  for d in "${dirs[@]}"; do
    if ! runuser -u "$PG_OS_USER" -- test -x "$d" 2>/dev/null; then
      log "granting o+x on $d so the '$PG_OS_USER' user can reach $PG_DATA"
      chmod o+x "$d"
    fi
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Postmaster alive? (Own check instead of `pg_ctl status`: no user switch, and a killed-but-unreaped
# postmaster (zombie) counts as dead.)
pg_running() {
  local pid state
  pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != "Z" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q postgres
}

# Any live (non-zombie) process working in the data directory? (The postmaster and all its children chdir there.)
cluster_procs_alive() {
  local d state data
  data="$(cd "$PG_DATA" && pwd -P)"
  for d in /proc/[0-9]*; do
    [[ "$(readlink "$d/cwd" 2>/dev/null)" == "$data" ]] || continue
    state="$(awk '{print $3}' "$d/stat" 2>/dev/null)" || continue
    [[ "$state" != "Z" ]] && return 0
  done
  return 1
}

# A postmaster.pid left by a killed server whose pid is gone or an unreaped zombie (containers whose pid 1 does
# not reap) makes the new postmaster refuse to start ("lock file already exists"); drop it when nothing is alive.
# Same for the socket lock file .s.PGSQL.<port>.lock in our private socket directory.
clear_stale_pidfile() {
  local stale=()
  [[ -f "$PG_DATA/postmaster.pid" ]] && stale+=("$PG_DATA/postmaster.pid")
  local f
  for f in "$PG_SOCK_DIR"/.s.PGSQL.*; do [[ -e "$f" ]] && stale+=("$f"); done
  (( ${#stale[@]} )) || return 0
  if cluster_procs_alive; then
    die "processes of a previous server still use $PG_DATA; stop them first"
  fi
  log "removing stale lock files of a killed server: ${stale[*]}"
  rm -f "${stale[@]}"
}

# Port the running server actually listens on (4th line of postmaster.pid).
running_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

write_conf() {
  cat >"$PG_DATA/custsync.conf" <<EOF
# Written by scripts/postgres.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK_DIR'
unix_socket_permissions = 0777
max_connections = 200
shared_buffers = 128MB
password_encryption = 'scram-sha-256'
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = -1
EOF
  if is_root; then chown "$PG_OS_USER:" "$PG_DATA/custsync.conf"; fi
}

init_cluster() {
  local bin="$1"
  log "initdb into $PG_DATA"
  rm -rf "$PG_DATA"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  if is_root; then chown -R "$PG_OS_USER:" "$PG_DIR"; fi
  as_pg "$bin/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_LOG_DIR/initdb.log" 2>&1 \
    || { tail -n 30 "$PG_LOG_DIR/initdb.log" >&2; die "initdb failed (full log: $PG_LOG_DIR/initdb.log)"; }
  printf "\n# custsync: local settings (port, listen address, socket dir, limits)\ninclude = 'custsync.conf'\n" \
    >>"$PG_DATA/postgresql.conf"
}

psql_admin() {
  local bin; bin="$(find_pg_bin)"
  # Superuser over the private unix socket (trust); as root this needs no OS user switch.
  PGCONNECT_TIMEOUT=10 timeout 60 "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK_DIR" -p "$(running_port)" -U postgres "$@"
}

ensure_role_and_dbs() {
  local sql db
  sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;"
  for db in $PG_DATABASES; do
    sql+="
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$PG_USER')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\\gexec"
  done
  printf '%s\n' "$sql" | psql_admin -d postgres >/dev/null || die "could not create role/databases"
}

cmd_up() {
  mkdir -p "$SERVICES_DIR"
  exec 8>"$SERVICES_DIR/postgres.lock"
  flock -w 120 8 || die "another scripts/postgres.sh is running (lock $SERVICES_DIR/postgres.lock)"

  if pg_running; then
    local actual; actual="$(running_port)"
    [[ "$actual" == "$PG_PORT" ]] || log "WARNING: already running on port $actual, not $PG_PORT (run 'down' then 'up' to change it)"
    ensure_role_and_dbs
    log "already running on 127.0.0.1:$actual"
    return 0
  fi

  local bin; bin="$(find_pg_bin)"
  if [[ -z "$bin" ]]; then install_postgres; bin="$(find_pg_bin)"; fi
  [[ -n "$bin" ]] || die "PostgreSQL binaries still not found under /usr/lib/postgresql after install"
  if is_root; then id -u "$PG_OS_USER" >/dev/null 2>&1 || die "OS user '$PG_OS_USER' does not exist (it comes with the Debian package)"; fi

  port_in_use "$PG_PORT" && die "127.0.0.1:$PG_PORT is already in use by another process; set CUSTSYNC_PG_PORT or stop it"

  mkdir -p "$PG_DIR" "$PG_LOG_DIR" "$PG_SOCK_DIR"
  chmod 755 "$SERVICES_DIR" "$PG_DIR" "$PG_SOCK_DIR" 2>/dev/null || true
  if is_root; then chown "$PG_OS_USER:" "$PG_DIR" "$PG_LOG_DIR" "$PG_SOCK_DIR"; fi
  ensure_traversable

  [[ -f "$PG_DATA/PG_VERSION" ]] || init_cluster "$bin"
  if is_root; then chown -R "$PG_OS_USER:" "$PG_DATA" "$PG_LOG_DIR"; fi
  write_conf
  clear_stale_pidfile

  log "starting $("$bin/postgres" --version) on 127.0.0.1:$PG_PORT (data $PG_DATA)"
  if ! as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null 8>&-; then
    tail -n 30 "$PG_LOG" >&2 || true
    die "PostgreSQL did not start (log: $PG_LOG)"
  fi
  timeout 30 bash -c "until '$bin/pg_isready' -q -h 127.0.0.1 -p '$PG_PORT'; do sleep 0.2; done" \
    || { tail -n 30 "$PG_LOG" >&2; die "PostgreSQL not accepting TCP connections on 127.0.0.1:$PG_PORT"; }
  ensure_role_and_dbs
  log "ready on 127.0.0.1:$PG_PORT"
}

cmd_down() {
  mkdir -p "$SERVICES_DIR"
  exec 8>"$SERVICES_DIR/postgres.lock"
  flock -w 120 8 || die "another scripts/postgres.sh is running (lock $SERVICES_DIR/postgres.lock)"
  if ! pg_running; then log "not running"; return 0; fi
  local bin; bin="$(find_pg_bin)"
  log "stopping"
  as_pg "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null \
    || as_pg "$bin/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null
  log "stopped"
}

cmd_status() {
  if pg_running; then
    echo "postgres: running (pid $(head -n1 "$PG_DATA/postmaster.pid")) on 127.0.0.1:$(running_port), data $PG_DATA"
  else
    echo "postgres: stopped (data ${PG_DATA}$([[ -f "$PG_DATA/PG_VERSION" ]] || echo ', not initialised'))"
    return 3
  fi
}

db_url() { echo "postgresql+asyncpg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$1"; }

cmd_env() {
  echo "export DATABASE_URL=$(db_url "$PG_MAIN_DB")"
  local db
  for db in $PG_DATABASES; do
    [[ "$db" == *_test ]] && echo "export TEST_DATABASE_URL=$(db_url "$db")"
  done
  return 0
}

cmd_psql() {
  local db="${1:-$PG_MAIN_DB}"; shift || true
  local bin; bin="$(find_pg_bin)"
  PGPASSWORD="$PG_PASSWORD" exec "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$db" "$@"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  url) db_url "${2:-$PG_MAIN_DB}" ;;
  psql) shift; cmd_psql "$@" ;;
  *) echo "usage: $0 up|down|status|env|url [db]|psql [db] [psql args...]" >&2; exit 2 ;;
esac
