#!/usr/bin/env bash
# Installs what `make run` / `make test` need on a fresh Debian machine:
# redis-server (and, for the tests, PostgreSQL, Node.js with the contract linters' npm
# packages from their lockfile, Chromium with its driver, which test
# the ops page in a real browser, and luacheck, which lints the Redis scripts) from
# Debian's packages when absent, and the project with its dependencies into ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."
want_pg=${1:-}

apt_install() {
  local runner=()
  [ "$(id -u)" = 0 ] || runner=(sudo)
  echo "bootstrap: installing $* from Debian's packages" >&2
  DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${runner[@]}" apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
if [ "$want_pg" = "--postgres" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql
fi
if [ "$want_pg" = "--postgres" ] && ! command -v chromedriver >/dev/null 2>&1; then
  apt_install chromium chromium-driver
fi
if [ "$want_pg" = "--postgres" ] && ! command -v luacheck >/dev/null 2>&1; then
  apt_install lua-check  # lints the Redis scripts (infra/lua) in the tests
fi
if [ "$want_pg" = "--postgres" ] && ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm  # the contract's linters and the typed-client check
fi
if [ "$want_pg" = "--postgres" ]; then
  # the contract's linters, and the TypeScript client kit (clients/kit), from their lockfiles
  for dir in devtools/apilint clients/kit; do
    if [ ! -f "$dir/node_modules/.installed" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.installed" ]; then
      echo "bootstrap: installing $dir's npm packages from its package-lock.json" >&2
      (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
      touch "$dir/node_modules/.installed"
    fi
  done
fi

PY=${PYTHON:-python3}
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
