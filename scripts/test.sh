#!/usr/bin/env bash
# Set up everything the tests need, then run them. Usage: scripts/test.sh [pytest args]
#
# Real services, no mocks: PostgreSQL on 127.0.0.1:5432 (started here when it
# is installed but not running) and Debian's Chromium for the browser test
# (installed with apt-get when we are root). Without them those tests skip
# locally; under CI=true they fail instead. Set DRIFTBOARD_TEST_WHEEL=1 to test
# the built wheel locally as CI does (scripts/setup.sh restores the editable install).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev

# Under CI the suite runs against the installed wheel, as users get it, not the
# source tree: built from this checkout, installed over the editable install.
if [ "${CI:-}" = true ] || [ "${DRIFTBOARD_TEST_WHEEL:-}" = 1 ]; then
  rm -rf build dist
  .venv/bin/python -m pip --disable-pip-version-check -q wheel --no-deps --no-build-isolation -w dist .
  .venv/bin/python -m pip --disable-pip-version-check -q install --no-deps --force-reinstall dist/driftboard-*.whl
  rm -rf build
  echo "test: running against $(.venv/bin/python -P -c 'import driftboard; print(driftboard.__file__)')" >&2
fi

if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test: installing Debian's chromium for the browser test" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

exec .venv/bin/python -m pytest "$@"
