#!/usr/bin/env bash
# What the documentation site loads in the browser besides MkDocs Material itself: mermaid, for the
# diagrams. Material would fetch it from a CDN (a blank diagram offline); this fetches it once, at a pinned
# version checked by its SHA-256, from the npm registry into docs/assets/vendor/mermaid/ (not committed:
# it is a build input like the Python packages of the `docs` extra), where mkdocs.yml loads it from.
#
#   scripts/docs-assets.sh      fetch it if missing (make docs and make docs-build run this)
set -euo pipefail

MERMAID=11.12.2
MERMAID_SHA256=d0830a6c05546e9edb8fe20a8f545f3e0dc7c4c3134d584bad9c13a99d7a71e0   # dist/mermaid.min.js

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OUT="$ROOT/docs/assets/vendor/mermaid"
if [[ -f "$OUT/mermaid.min.js" ]] && echo "$MERMAID_SHA256  $OUT/mermaid.min.js" | sha256sum --check --status; then
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "mermaid@$MERMAID" >/dev/null)
tar -xzf "$WORK/mermaid-$MERMAID.tgz" -C "$WORK" package/dist/mermaid.min.js package/LICENSE
echo "$MERMAID_SHA256  $WORK/package/dist/mermaid.min.js" | sha256sum --check --status \
  || { echo "docs-assets: mermaid@$MERMAID does not have the pinned SHA-256" >&2; exit 1; }
mkdir -p "$OUT"
cp "$WORK/package/dist/mermaid.min.js" "$WORK/package/LICENSE" "$OUT/"
echo "docs-assets: mermaid $MERMAID in ${OUT#"$ROOT"/}"
