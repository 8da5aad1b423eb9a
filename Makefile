# seeclear-bench: `make demo` sets up and runs the embedded demo; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= runs/demo

.PHONY: setup demo test test-fast bench lock clean

# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml: they import together with no patching.
# constraints.txt pins every transitive version the tests passed with, so pip resolves in seconds, not minutes.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,metrics]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/seeclear-bench run --out $(OUT)
	cp $(OUT)/leaderboard.md reports/demo-leaderboard.md

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_metrics.py

# Re-pin constraints.txt from the current environment (after changing dependencies and passing `make test`).
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^seeclear' > constraints.txt

clean:
	rm -rf runs .pytest_cache
