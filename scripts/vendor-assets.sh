#!/usr/bin/env bash
# The third-party files custsync serves itself, so that nothing it shows needs the network: Swagger UI
# and Redoc for the API's /docs and /redoc (entrypoints/http/static/vendor/), and mermaid for the
# documentation site's diagrams (docs/assets/vendor/; MkDocs Material would fetch it from a CDN).
# Fetched from the npm registry at pinned versions, copied with their licences, and summed into
# SHA256SUMS (tests/unit/test_vendored_assets.py checks the files against it). Run it only to
# upgrade: bump a version below, run, commit.
#
#   scripts/vendor-assets.sh          fetch and write the files
set -euo pipefail

SWAGGER_UI=5.36.0   # swagger-ui-dist: Swagger UI (Apache-2.0)
REDOC=2.5.4         # redoc: Redoc (MIT)
MERMAID=11.12.2     # mermaid (MIT)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OUT="$ROOT/entrypoints/http/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fetch() {  # fetch <package> <version>: the tarball from the registry (npm checks its integrity), unpacked
  mkdir -p "$WORK/$1"
  (cd "$WORK" && npm pack --silent "$1@$2" >/dev/null)
  tar -xzf "$WORK/$1-$2.tgz" -C "$WORK/$1"
}

fetch swagger-ui-dist "$SWAGGER_UI"
fetch redoc "$REDOC"
fetch mermaid "$MERMAID"

rm -rf "$OUT" && mkdir -p "$OUT/swagger-ui" "$OUT/redoc"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui-standalone-preset.js \
         swagger-ui-standalone-preset.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "$WORK/swagger-ui-dist/package/$f" "$OUT/swagger-ui/$f"
done
for f in bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE; do
  cp "$WORK/redoc/package/$f" "$OUT/redoc/$(basename "$f")"
done
# Source maps are not shipped: drop the last-line comments that point at them (a 404 in the browser's
# tools). Only whole last lines: the bundles hold such strings inside their code too.
for f in "$OUT/swagger-ui/swagger-ui-bundle.js" "$OUT/swagger-ui/swagger-ui-standalone-preset.js" \
         "$OUT/swagger-ui/swagger-ui.css" "$OUT/redoc/redoc.standalone.js"; do
  sed -i -e '$ { /^\/\/# sourceMappingURL=[^ ]*$/d; /^ *\/\*# sourceMappingURL=[^ ]* *\*\/$/d }' "$f"
done

cat > "$OUT/VERSIONS" <<VERSIONS
swagger-ui-dist $SWAGGER_UI https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-$SWAGGER_UI.tgz Apache-2.0
redoc $REDOC https://registry.npmjs.org/redoc/-/redoc-$REDOC.tgz MIT
VERSIONS
(cd "$OUT" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "vendored swagger-ui-dist $SWAGGER_UI and redoc $REDOC into ${OUT#"$ROOT"/}"

DOCS="$ROOT/docs/assets/vendor"
rm -rf "$DOCS" && mkdir -p "$DOCS/mermaid"
cp "$WORK/mermaid/package/dist/mermaid.min.js" "$WORK/mermaid/package/LICENSE" "$DOCS/mermaid/"
echo "mermaid $MERMAID https://registry.npmjs.org/mermaid/-/mermaid-$MERMAID.tgz MIT" > "$DOCS/VERSIONS"
(cd "$DOCS" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "vendored mermaid $MERMAID into ${DOCS#"$ROOT"/}"
