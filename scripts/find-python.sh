#!/usr/bin/env sh
# Prints the path of a Python >= 3.12 (Django 6 needs it), or explains what is missing.
# Order: $PYTHON, python3.13 / python3.12 / python3 on PATH (only if they really run),
# then pyenv's versions folder (its shims may point at an uninstalled version).
ok() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
    if ok "$PYTHON"; then command -v "$PYTHON" 2>/dev/null || echo "$PYTHON"; exit 0; fi
    echo "PYTHON=$PYTHON is not a working Python >= 3.12 with venv" >&2; exit 1
fi
for cand in python3.14 python3.13 python3.12 python3; do
    p=$(command -v "$cand" 2>/dev/null) || continue
    if ok "$p"; then echo "$p"; exit 0; fi
done
for p in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -r); do
    if ok "$p"; then echo "$p"; exit 0; fi
done
echo "Coachdesk needs Python >= 3.12 (Django 6). None found on PATH or in pyenv." >&2
echo "Install one (e.g. 'pyenv install 3.13' or 'apt-get install python3.12-venv') or run make PYTHON=/path/to/python3.12." >&2
exit 1
