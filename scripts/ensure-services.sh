#!/usr/bin/env bash
# Make sure what the test suite talks to is there: a PostgreSQL server (for the registry
# tests). Starts a local one when it is installed but stopped; fails loudly when none can be
# had, naming what to install. Never lets tests skip silently.
set -euo pipefail

PG_URL="${FEATUREHUB_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

pg_ready() { pg_isready -q -d "$PG_URL" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "ensure-services: installing PostgreSQL (Debian package postgresql)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
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
  echo "ensure-services: PostgreSQL is not reachable at $PG_URL." >&2
  echo "  Install and start it (Debian: apt-get install postgresql), or set" >&2
  echo "  FEATUREHUB_TEST_POSTGRES_URL to a server the tests may create databases on." >&2
  exit 1
fi
echo "ensure-services: PostgreSQL ready at $PG_URL"
