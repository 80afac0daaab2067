#!/usr/bin/env bash
# Build (once) the virtualenv the Airflow integration's tests run Airflow in. Airflow is not a
# dependency of featurehub: the DAG factory is imported only inside Airflow, so the tests run
# a real Airflow in a venv of its own. The stamp file names the pinned version, so changing
# the pin rebuilds and anything else reuses the cached venv.
#
# Airflow's published constraints files are not reachable from every machine (PyPI only), so
# the pin is a release whose own upper bounds resolve from PyPI alone on Python 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.1.8}"
PYTHON="${PYTHON:-python3}"
VENV="${FEATUREHUB_AIRFLOW_VENV:-.venv-airflow}"
STAMP="$VENV/.installed-apache-airflow-$AIRFLOW_VERSION"

if [ -f "$STAMP" ]; then
  echo "ensure-airflow-venv: apache-airflow $AIRFLOW_VERSION ready in $VENV"
  exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# featurehub itself goes in too: the DAG module imports featurehub.integrations.airflow, and
# the tasks run the featurehub CLI of this venv.
"$VENV/bin/python" -m pip install --quiet "apache-airflow==$AIRFLOW_VERSION" "apache-airflow-providers-standard" -e .
touch "$STAMP"
echo "ensure-airflow-venv: apache-airflow $AIRFLOW_VERSION installed in $VENV"
