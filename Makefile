# Two commands for a fresh machine:  make lab   and   make test
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# JupyterLab refuses to start as root (e.g. in a container) unless told it may
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
# Project-local defaults (jupyter/labconfig): no news pop-up; the user's own config untouched
LAB_ENV  := JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))"

.PHONY: lab test setup notebooks time-notebooks stats student benchmark gpu-check clean

$(BIN)/activate: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $(BIN)/activate

setup: $(BIN)/activate                ## create or reuse .venv with everything installed

lab: setup                            ## open JupyterLab on the notebooks
	$(LAB_ENV) $(BIN)/jupyter lab notebooks/ $(LAB_ARGS)

test: setup                           ## lint, unit tests, claims, stored notebooks, nbval, browser
	$(BIN)/ruff check .
	$(BIN)/pytest

notebooks: setup                      ## execute every notebook on the CPU and store it
	$(BIN)/python scripts/execute_notebooks.py

time-notebooks: setup                 ## time the whole series, storing nothing
	$(BIN)/python scripts/execute_notebooks.py --no-write

stats: setup                          ## class minutes (estimated) and CPU seconds per notebook
	$(BIN)/python scripts/notebook_stats.py --time

student: setup                        ## the student edition (no solutions): student/ and student.zip
	$(BIN)/python scripts/make_student_edition.py

benchmark: setup                      ## seconds per epoch: preloaded tensors vs DataLoader
	$(BIN)/python benchmarks/epoch_speed.py

gpu-check: setup                      ## on a CUDA machine: GPU tests, GPU speed, series timed on the GPU
	$(BIN)/pytest -m gpu tests/test_gpu.py
	$(BIN)/python benchmarks/epoch_speed.py --device cuda --epochs 5
	$(BIN)/python scripts/execute_notebooks.py --no-write --device ''

clean:
	rm -rf $(VENV) data student student.zip .pytest_cache .ruff_cache
