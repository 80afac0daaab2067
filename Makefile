# Two commands do all set-up: `make demo` and `make test`. Both depend on `make install`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REPO := feature_repo
DEMO_DATASET := trip_training_$(shell date -u +%Y%m%d_%H%M%S)
DEMO_STARTED := $(shell date -u +%Y-%m-%dT%H:%M:%S)
ROWS ?= 20000

.PHONY: install demo test lint format bench feast-venv airflow-venv clean stack stack-stop

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "featurehub needs Python 3.10+; set PYTHON=python3.x")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,spark,postgres,mlflow]'
	touch $(STAMP)

demo: install
	$(BIN)/python $(REPO)/generate_data.py --rows $(ROWS)
	$(BIN)/featurehub -r $(REPO) plan || test $$? -eq 2
	$(BIN)/featurehub -r $(REPO) apply
	$(BIN)/featurehub -r $(REPO) list views
	$(BIN)/featurehub -r $(REPO) list services
	$(BIN)/featurehub -r $(REPO) materialize $$(date -u -d '-31 days' +%F) $$(date -u -d '+1 day' +%F)
	$(BIN)/python $(REPO)/build_training_set.py
	$(BIN)/featurehub -r $(REPO) datasets save $(DEMO_DATASET) \
		--entities $(REPO)/data/trips.parquet --service trip_completion_v1 \
		--description "make demo: every trip, point-in-time correct"
	$(BIN)/featurehub -r $(REPO) datasets list
	# a model trained on that dataset, registered with its lineage, gated, promoted, then
	# nightly-style batch scoring with the same point-in-time join
	$(BIN)/python $(REPO)/train_model.py $(DEMO_DATASET)
	$(BIN)/featurehub -r $(REPO) models describe trip_completion@production
	# the promoted model behind the feature server, briefly: predictions and its metrics
	$(BIN)/python $(REPO)/serve_model.py
	$(BIN)/featurehub -r $(REPO) models score trip_completion \
		--entities $(REPO)/data/trips.parquet --out $(REPO)/data/scores.parquet
	$(BIN)/python $(REPO)/compare_online_offline.py
	$(BIN)/featurehub -r $(REPO) materialize-incremental
	$(BIN)/featurehub -r $(REPO) status
	$(BIN)/python $(REPO)/serve_with_log.py
	# what this demo served, replayed through the offline join (no skew) and against the
	# training set of the last 30 days: lifetime counts have grown since, so the distribution
	# check may say so (exit 1); exit 2 (it could not run) fails the demo
	$(BIN)/featurehub -r $(REPO) skew trip_completion_v1 --against $(DEMO_DATASET) \
		--start $(DEMO_STARTED) --html $(REPO)/data/skew_report.html || test $$? -eq 1
	# the production model's own answers (serve_model.py's predictions) against its training set
	$(BIN)/featurehub -r $(REPO) skew --model trip_completion@production \
		--start $(DEMO_STARTED) || test $$? -eq 1
	$(BIN)/featurehub -r $(REPO) skew history trip_completion_v1 --limit 3
	@echo "skew report: open $(REPO)/data/skew_report.html in a browser (no server needed)"

test: install airflow-venv
	bash scripts/ensure-services.sh
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The deployable stack on this machine without Docker (docs/orchestration.md): redis-server,
# PostgreSQL, the feature server and a scheduler over the example repo, in the foreground
# (Ctrl-C stops it). STACK_SPARK=1 adds a Spark master and worker. `make stack-stop` stops
# it from another terminal; pid files and logs are in .stack/.
stack: install
	STACK_PYTHON=$(BIN)/python bash scripts/stack.sh start

stack-stop:
	STACK_PYTHON=$(BIN)/python bash scripts/stack.sh stop

# A real Airflow for tests/integrations/test_airflow.py, in its own venv (featurehub does not
# depend on Airflow); built once, kept while the pinned version is the same.
airflow-venv:
	PYTHON=$(PYTHON) bash scripts/ensure-airflow-venv.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark; each prints its figures and writes them into its section of BENCHMARKS.md.
# FEAST=--feast also runs Feast 0.67 on the same data, in its own venv (bench/.venv-feast).
# bench_server.py drives the server with wrk, installed here when apt-get can; without it a
# slower Python load generator is used (and says so).
bench: install $(if $(FEAST),feast-venv)
	command -v wrk >/dev/null || (command -v apt-get >/dev/null && apt-get install -y -qq wrk) \
		|| echo "wrk not installed: bench_server.py falls back to a Python load generator"
	$(BIN)/python bench/bench_pit.py $(FEAST)
	$(BIN)/python bench/bench_online.py $(FEAST)
	$(BIN)/python bench/bench_materialize.py $(FEAST)
	$(BIN)/python bench/bench_server.py --baseline $(FEAST)
	$(BIN)/python bench/bench_skew.py --log-format 1
	$(BIN)/python bench/bench_log_writer.py
	$(BIN)/python bench/bench_predict.py
	$(BIN)/python bench/bench_score.py

feast-venv: bench/.venv-feast/.installed

bench/.venv-feast/.installed:
	test -d bench/.venv-feast || $(PYTHON) -m venv bench/.venv-feast
	bench/.venv-feast/bin/pip install --quiet 'feast[redis,duckdb]==0.67.0'
	touch $@

clean:
	rm -rf $(VENV) .venv-airflow .pytest_cache .ruff_cache .mypy_cache $(REPO)/data
