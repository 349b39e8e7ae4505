# Two commands on a fresh machine (Python 3.11 with venv):
#   make demo   set up .venv, generate demo data, train, calibrate, export, score, report
#   make test   set up .venv and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "anomae needs Python >= 3.11"'
	@$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	# constraints.txt pins the CPU build of torch; an unpinned torch pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,dev]'
	# reference VUS implementation for tests/eval/test_metrics.py; --no-deps: its metadata pins
	# numpy<2 and pulls torch and tslearn, none of which its evaluation module needs
	$(BIN)/python -m pip install -q --no-deps tsb-ad==1.5
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/anomae run pipelines/demo.toml --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check anomae tests bench deploy
	$(BIN)/mypy anomae
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/score_bench.py

lint: $(STAMP)
	$(BIN)/ruff check anomae tests bench
	$(BIN)/mypy anomae

clean:
	rm -rf runs .pytest_cache
