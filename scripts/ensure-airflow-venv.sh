#!/usr/bin/env bash
# Build (once) the virtualenv the Airflow integration's tests run a real Airflow in. Airflow is
# not a dependency of featurehub: featurehub.integrations.airflow is imported only inside
# Airflow, so the tests run Airflow in a venv of its own, with featurehub installed in it as a
# DAG file would need. Kept while the pinned version is the same (the stamp file is named by
# it); when pyproject.toml changes, featurehub's dependencies are brought up to date in place.
#
# Airflow's published constraints files are not reachable from every machine (PyPI only), so
# the pin is a release whose own bounds resolve from PyPI alone, together with featurehub's
# (Airflow 3.1 accepts SQLAlchemy 2; Airflow 2 pins it below 2 and cannot share a venv with
# featurehub).
set -euo pipefail
cd "$(dirname "$0")/.."

AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.1.8}"
PYTHON="${PYTHON:-python3}"
VENV="${FEATUREHUB_AIRFLOW_VENV:-.venv-airflow}"
STAMP="$VENV/.installed-apache-airflow-$AIRFLOW_VERSION"
PROJECT_HASH="$(sha256sum pyproject.toml | cut -c1-16)"

install() {
  "$VENV/bin/python" -m pip install --quiet \
    "apache-airflow==$AIRFLOW_VERSION" apache-airflow-providers-standard -e .
  echo "$PROJECT_HASH" > "$STAMP"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PROJECT_HASH" ]; then
  echo "ensure-airflow-venv: apache-airflow $AIRFLOW_VERSION ready in $VENV"
  exit 0
fi
if [ -f "$STAMP" ]; then
  echo "ensure-airflow-venv: pyproject.toml changed; updating featurehub in $VENV"
  install
  exit 0
fi
"$PYTHON" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else
  f"apache-airflow needs Python 3.10 to 3.13, {sys.executable} is {sys.version.split()[0]}; set PYTHON=python3.x")'
echo "ensure-airflow-venv: building $VENV with apache-airflow $AIRFLOW_VERSION (once; a few minutes)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
install
echo "ensure-airflow-venv: apache-airflow $AIRFLOW_VERSION installed in $VENV"
