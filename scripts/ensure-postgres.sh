#!/usr/bin/env bash
# Find a reachable PostgreSQL server: at $FEATUREHUB_TEST_POSTGRES_URL (default
# postgresql://postgres@127.0.0.1:5432/postgres, trust auth), installing it with apt-get when
# possible and starting a stopped Debian cluster. Sets PG_URL; fails naming what to do.
# Sourced by ensure-services.sh (the tests) and stack.sh (`make stack`), or run on its own.
set -euo pipefail

if ! declare -F apt_install >/dev/null; then
  apt_install() {
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "ensure-postgres: installing $* (Debian packages)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
  }
fi

PG_URL="${FEATUREHUB_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

pg_ready() { pg_isready -q -d "$PG_URL" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  apt_install postgresql
fi
if command -v pg_isready >/dev/null 2>&1 && ! pg_ready; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    done
    for _ in $(seq 1 20); do pg_ready && break; sleep 0.5; done
  fi
fi
if ! command -v pg_isready >/dev/null 2>&1 || ! pg_ready; then
  echo "ensure-postgres: PostgreSQL is not reachable at $PG_URL." >&2
  echo "  Install and start it (Debian: apt-get install postgresql), or set" >&2
  echo "  FEATUREHUB_TEST_POSTGRES_URL to a server the tests may create databases on." >&2
  exit 1
fi
echo "ensure-postgres: PostgreSQL ready at $PG_URL"
