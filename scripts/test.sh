#!/usr/bin/env bash
# Set up everything the test suite needs, then run it.
#
# Idempotent: a second run reuses .venv and the tool cache. Installs:
#   - the package with its test and redis extras into .venv (Python 3.11+)
#   - redis-server (Debian package) when it is missing
#   - Node 22 and wrangler 4 (npm) into .cache/tools, for the Cloudflare tests
#   - a Python 3.12 venv with vercel-runtime into .cache/vercel, for the Vercel tests
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,redis]'

bash scripts/test-tools.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
