#!/usr/bin/env bash
# Installs wrangler and the Node it needs (wrangler 4 wants Node 22 or newer)
# from npm into a cache folder, for the cloudflare_module preset's tests: they
# validate wrangler.toml against wrangler's own config schema and run
# `wrangler deploy --dry-run` on a built output. Both versions are pinned, so
# the tests do not change when a new wrangler is published; the folder is
# made once and reused while the versions stay the same.
#
# Prints the folder holding the `node` and `wrangler` executables.
set -euo pipefail

wrangler_version="4.164.0"
node_version="22.23.3"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${NITRO_WRANGLER_DIR:-$root/.cache/wrangler}"
stamp="wrangler@$wrangler_version node@$node_version"
bin="$dest/node_modules/.bin"

if [[ -x "$bin/wrangler" && -x "$bin/node" && -f "$dest/.nitro-stamp" ]] \
    && [[ "$(cat "$dest/.nitro-stamp")" == "$stamp" ]]; then
    echo "$bin"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is needed to install $stamp; install Node.js and npm" >&2
    exit 1
fi

echo "installing $stamp into $dest" >&2
rm -rf "$dest"
mkdir -p "$dest"
# Exact versions: npm on an older Node would otherwise pick the newest
# wrangler whose engines that Node satisfies.
npm install --prefix "$dest" --no-save --no-audit --no-fund --loglevel=error \
    "wrangler@$wrangler_version" "node@$node_version" >&2
"$bin/node" --version >/dev/null
echo "$stamp" > "$dest/.nitro-stamp"
echo "$bin"
