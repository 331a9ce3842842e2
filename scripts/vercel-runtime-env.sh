#!/usr/bin/env bash
# Prepares a Python 3.12 virtual environment holding Vercel's own Python
# launcher (the vercel-runtime package), which the vercel preset's tests use to
# run the generated function the way the platform does. The environment is
# made once under .cache/ and reused while its versions stay the same.
#
# Prints the environment's python on standard output. Python 3.12 is looked
# for in $NITRO_PYTHON312, then python3.12 on PATH, then pyenv's versions.
set -euo pipefail

runtime_version="0.24.1"
croniter_version="7.0.0"
# The redis client of nitro-build[redis], for the tests of a lock URL.
redis_version="8.1.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${NITRO_VERCEL_VENV:-$root/.cache/vercel-runtime-py312}"
stamp="vercel-runtime==$runtime_version croniter==$croniter_version"
stamp+=" redis==$redis_version"

if [[ -x "$dest/bin/python" && -f "$dest/.nitro-stamp" ]] \
    && [[ "$(cat "$dest/.nitro-stamp")" == "$stamp" ]]; then
    echo "$dest/bin/python"
    exit 0
fi

python=""
candidates=()
if [[ -n "${NITRO_PYTHON312:-}" ]]; then
    candidates+=("$NITRO_PYTHON312")
fi
if command -v python3.12 >/dev/null 2>&1; then
    candidates+=("$(command -v python3.12)")
fi
if command -v pyenv >/dev/null 2>&1; then
    pyenv_root="$(pyenv root)"
    for found in $(ls -d "$pyenv_root"/versions/3.12.* 2>/dev/null | sort -V -r); do
        candidates+=("$found/bin/python")
    done
fi
for candidate in "${candidates[@]}"; do
    if [[ -x "$candidate" ]] && "$candidate" -c \
        'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
        python="$candidate"
        break
    fi
done

if [[ -z "$python" ]]; then
    cat >&2 <<MSG
error: no Python 3.12 found for Vercel's Python launcher (vercel-runtime needs 3.12).
Looked at: \$NITRO_PYTHON312, python3.12 on PATH, and \$(pyenv root)/versions/3.12.*.
Fix: make a Python 3.12 interpreter available (a pyenv version, or a system
package) or point NITRO_PYTHON312 at one; the Vercel tests cannot run without it.
MSG
    exit 1
fi

echo "using $python for $stamp in $dest" >&2
rm -rf "$dest"
"$python" -m venv "$dest"
"$dest/bin/python" -m pip install --quiet --disable-pip-version-check \
    "vercel-runtime==$runtime_version" "croniter==$croniter_version" \
    "redis==$redis_version" >&2
echo "$stamp" > "$dest/.nitro-stamp"
echo "$dest/bin/python"
