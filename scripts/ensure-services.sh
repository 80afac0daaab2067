#!/usr/bin/env bash
# Make sure what the test suite talks to is there: a Java runtime (for Spark), a
# PostgreSQL server (for the registry tests) and a headless Chromium with its driver (for the
# skew report's page tests). Installs them with apt-get when possible,
# starts a stopped PostgreSQL, and fails loudly, naming what to install, when something
# cannot be had. Never lets tests skip silently.
set -euo pipefail

apt_install() {
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "ensure-services: installing $* (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

if [ -z "${JAVA_HOME:-}" ] && ! command -v java >/dev/null 2>&1; then
  apt_install openjdk-17-jre-headless
fi
if [ -z "${JAVA_HOME:-}" ] && ! command -v java >/dev/null 2>&1; then
  echo "ensure-services: no Java runtime for Spark. Install Java 17+ (Debian: apt-get install" >&2
  echo "  openjdk-17-jre-headless) or set JAVA_HOME." >&2
  exit 1
fi
echo "ensure-services: Java ready ($(java -version 2>&1 | head -n 1))"

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
  echo "ensure-services: PostgreSQL is not reachable at $PG_URL." >&2
  echo "  Install and start it (Debian: apt-get install postgresql), or set" >&2
  echo "  FEATUREHUB_TEST_POSTGRES_URL to a server the tests may create databases on." >&2
  exit 1
fi
echo "ensure-services: PostgreSQL ready at $PG_URL"

CHROMIUM="${FEATUREHUB_TEST_CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${FEATUREHUB_TEST_CHROMEDRIVER:-/usr/bin/chromedriver}"
if ! command -v "$CHROMIUM" >/dev/null 2>&1 || ! command -v "$CHROMEDRIVER" >/dev/null 2>&1; then
  apt_install chromium chromium-driver
fi
if ! command -v "$CHROMIUM" >/dev/null 2>&1 || ! command -v "$CHROMEDRIVER" >/dev/null 2>&1; then
  echo "ensure-services: no headless browser at $CHROMIUM with its driver $CHROMEDRIVER." >&2
  echo "  Install them (Debian: apt-get install chromium chromium-driver), or set" >&2
  echo "  FEATUREHUB_TEST_CHROMIUM and FEATUREHUB_TEST_CHROMEDRIVER." >&2
  exit 1
fi
echo "ensure-services: Chromium ready ($("$CHROMEDRIVER" --version 2>/dev/null | head -n 1))"
