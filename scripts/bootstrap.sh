#!/usr/bin/env bash
# Installs what `make run` / `make test` need on a fresh Debian machine, from Debian's
# packages when absent: redis-server and Node.js with npm (the reference web app at /app is
# built with them from its lockfile); for the tests also PostgreSQL, Chromium with its
# driver (the ops page and the web app in a real browser), luacheck (the Redis scripts),
# and the npm packages of the contract's linters and of the client kit's tests. Then the
# project with its dependencies into ./.venv.
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
if { [ "$want_pg" = "--postgres" ] || [ "${RIDEHAIL_API_PROCESSES:-1}" != "1" ]; } \
    && ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  apt_install haproxy  # in front of several API processes (RIDEHAIL_API_PROCESSES)
fi
if [ "$want_pg" = "--postgres" ] && ! command -v luacheck >/dev/null 2>&1; then
  apt_install lua-check  # lints the Redis scripts (infra/lua) in the tests
fi
if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm  # the reference web app's build; the contract's linters; the kit
fi
npm_ci() {  # a directory's npm packages, from its lockfile, when it changed
  local dir=$1
  if [ ! -f "$dir/node_modules/.installed" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.installed" ]; then
    echo "bootstrap: installing $dir's npm packages from its package-lock.json" >&2
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$dir/node_modules/.installed"
  fi
}
if [ "$want_pg" = "--postgres" ]; then
  # the contract's linters, and the TypeScript client kit's tests (clients/kit)
  npm_ci devtools/apilint
  npm_ci clients/kit
fi
# the reference web app the API serves at /app in development (clients/app, on the kit)
npm_ci clients/app
(cd clients/app && npm run build --silent >/dev/null)

PY=${PYTHON:-python3}
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
