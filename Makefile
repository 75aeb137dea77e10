# Two entry points for a fresh machine: `make demo` and `make test`. Both set up .venv first.
# Set-up is ONE pip command with the constraints file, so torch, torchvision, lpips and
# pytorch-fid resolve together (see docs/install.md for the CUDA stack on a GPU cluster).
PYTHON ?= python3
VENV := .venv
CONSTRAINTS ?= constraints/cpu.txt
EXTRAS ?= local,test
STAMP := $(VENV)/.installed

.PHONY: setup demo test stack-down clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	$(VENV)/bin/python -m vton_torchvision_hook install
	$(VENV)/bin/python -m orchestrator.train.strategy.prebuild
	touch $@

demo: setup
	$(VENV)/bin/vton demo

test: setup
	$(VENV)/bin/python -m pytest tests --durations=40

stack-down: setup
	$(VENV)/bin/vton stack down

clean:
	rm -rf $(VENV) .vton build *.egg-info
