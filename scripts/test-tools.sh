#!/usr/bin/env bash
# The outside tools the end-to-end tests drive: redis-server, wrangler on
# Node 22, and Vercel's Python launcher on Python 3.12.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null
  fi
fi

# Node 22 and wrangler 4, for the cloudflare_module tests.
bash scripts/wrangler-env.sh >/dev/null

# Vercel's Python launcher on Python 3.12, for the vercel preset's tests.
bash scripts/vercel-runtime-env.sh >/dev/null
