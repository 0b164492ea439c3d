# Two commands do everything on a fresh machine:
#   make demo   # creates .venv on first use, then runs the main job
#   make test   # creates .venv on first use, then runs the test suite
VENV    ?= .venv
PYTHON  ?= python3
# torch and torchvision are pinned here so that pip takes the local wheels where a machine has them.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN      = $(VENV)/bin

.PHONY: venv demo test test-all bench fixture-check leaderboard leaderboard-check sweep-local-check clean-venv

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/cxrbench run --model medslip --task siim-seg --label-frac 0.01 --out results/demo --overwrite

fixture-check: venv
	$(BIN)/python -m medslip.reference ../shared/fixtures/medslip_official_small_seed0.safetensors

test: venv
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

test-all: venv
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -m ""

leaderboard: venv
	$(BIN)/cxrbench leaderboard

leaderboard-check: venv
	$(BIN)/cxrbench leaderboard --check

# A demo sweep cell through submitit's local executor, the code path a Slurm sweep takes (run by CI).
sweep-local-check: venv
	out=$$(mktemp -d) && $(BIN)/cxrbench sweep --grid demo --launcher local --models medslip --tasks nih-zs \
		--out $$out --no-progress && test -f $$out/medslip/nih-zs/frac-none_seed-none.json && rm -rf $$out

bench: venv
	$(BIN)/python -m pytest benchmarks -m "" --benchmark-only --benchmark-columns=min,mean,stddev,rounds

clean-venv:
	rm -rf $(VENV)
