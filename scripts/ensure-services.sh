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

# PostgreSQL: found (or installed and started) by its own script, which `make stack` uses too.
source "$(dirname "$0")/ensure-postgres.sh"

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
