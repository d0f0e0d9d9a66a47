#!/usr/bin/env bash
# A browser for the page tests (tests/browser): Debian's `chromium`, installed with apt-get if missing.
#
#   scripts/chromium.sh up       install it if missing; print its path
#   scripts/chromium.sh env      print the export line: CUSTSYNC_CHROMIUM=/usr/bin/chromium
#
# Tests drive it with Playwright (its Python package, from PyPI) through executable_path: Playwright's
# own browser download needs a CDN this machine cannot reach.
set -euo pipefail

CHROMIUM="${CUSTSYNC_CHROMIUM:-/usr/bin/chromium}"
log() { printf '[chromium] %s\n' "$*" >&2; }
die() { printf '[chromium] ERROR: %s\n' "$*" >&2; exit 1; }

run_privileged() {
  if [[ "$(id -u)" == 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

cmd_up() {
  if [[ ! -x "$CHROMIUM" ]]; then
    log "installing Debian's chromium (apt-get), once..."
    run_privileged env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq
    run_privileged env DEBIAN_FRONTEND=noninteractive timeout 900 \
      apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
  [[ -x "$CHROMIUM" ]] || die "no browser at $CHROMIUM"
  "$CHROMIUM" --headless --no-sandbox --version >/dev/null 2>&1 || die "$CHROMIUM does not start"
  echo "$CHROMIUM"
}

case "${1:-}" in
  up) cmd_up ;;
  env) echo "export CUSTSYNC_CHROMIUM=$CHROMIUM" ;;
  *) echo "usage: $0 up|env" >&2; exit 2 ;;
esac
