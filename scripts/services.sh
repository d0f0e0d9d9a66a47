#!/usr/bin/env bash
# Local backing services for custsync: a real PostgreSQL and a real Apache Kafka broker (KRaft), plus Stripe's
# stripe-mock for the integration tests, bound to 127.0.0.1 only, with all state under .services/ in the project
# root; and Debian's chromium for the page tests (scripts/chromium.sh). No Docker needed.
#
#   scripts/services.sh up       install what is missing, start all (reuses running ones), wait, print URLs
#   scripts/services.sh down     stop all
#   scripts/services.sh status   show state (exit 3 if something is not running)
#   scripts/services.sh env      print export lines; use:  eval "$(scripts/services.sh env)"
#
# The default ports sit below Linux's ephemeral range (32768-60999): a client that keeps reconnecting
# to a stopped service on loopback can otherwise be given that very port as its own source port,
# connect to itself, and keep the service from binding it when it restarts (the outage tests stop
# and restart PostgreSQL and Kafka under live clients).
#
# Environment: CUSTSYNC_PG_PORT (25432), CUSTSYNC_KAFKA_PORT (29092), CUSTSYNC_KAFKA_CONTROLLER_PORT
# (broker port + 1), CUSTSYNC_KAFKA_VERSION (4.1.2), CUSTSYNC_STRIPE_MOCK_PORT (29112),
# CUSTSYNC_STRIPE_MOCK_VERSION (pinned in scripts/stripe-mock.sh), CUSTSYNC_SERVICES_DIR (<project>/.services).
# Details: scripts/postgres.sh, scripts/kafka.sh and scripts/stripe-mock.sh (which can also be used on their own).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

cmd_up() {
  local t0=$SECONDS
  # Launch Kafka first (JVM boot overlaps with Postgres initdb/start), then wait for it.
  "$HERE/kafka.sh" start
  # stripe-mock (a `go install` the first time) builds and starts in the background meanwhile.
  "$HERE/stripe-mock.sh" up &
  local stripe_mock=$!
  "$HERE/postgres.sh" up
  "$HERE/chromium.sh" up >/dev/null  # the page tests' browser (apt-get, after PostgreSQL's: one dpkg lock)
  "$HERE/kafka.sh" wait
  wait "$stripe_mock" || { echo "services: stripe-mock did not start (see above)" >&2; exit 1; }
  echo "services up in $((SECONDS - t0))s:"
  echo "  PostgreSQL  $("$HERE/postgres.sh" url custsync)   (tests: .../custsync_test)"
  echo "  Kafka       $("$HERE/kafka.sh" env | sed 's/.*=//')"
  echo "  stripe-mock $("$HERE/stripe-mock.sh" env | sed 's/.*=//')"
  echo "  Chromium    $("$HERE/chromium.sh" env | sed 's/.*=//')   (page tests)"
  echo "  eval \"\$($HERE/services.sh env)\""
}

cmd_status() {
  local rc=0
  "$HERE/postgres.sh" status || rc=$?
  "$HERE/kafka.sh" status || rc=$?
  "$HERE/stripe-mock.sh" status || rc=$?
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) "$HERE/stripe-mock.sh" down; "$HERE/kafka.sh" down; "$HERE/postgres.sh" down ;;
  status) cmd_status ;;
  env) "$HERE/postgres.sh" env; "$HERE/kafka.sh" env; "$HERE/stripe-mock.sh" env; "$HERE/chromium.sh" env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
