# The README's two commands:  `make demo`  (main job)  and  `make test`  (test suite).
# Both create .venv when missing and install everything into it; the install step is skipped once done.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bwdp-installed
# DDS stays on this machine; each run gets its own domain unless the caller chose one.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOCALHOST_ONLY := 1
export ROS_DOMAIN_ID ?= $(shell echo $$(( ($$$$ % 100) + 101 )))

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml ros/setup.py tools/pyproject.toml scripts/build_tf2_msgs.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the local CPU wheel, so nothing later pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	# bwdp_core (with every extra), the ROS node package and the dev tools, all editable
	$(PY) -m pip install -q -e '.[all,ros,dev]' -e ./ros -e ./tools
	# tf2_msgs is in no registry: generate it into the venv only when it is not importable
	$(PY) -c "import tf2_msgs.msg" 2>/dev/null || bash scripts/build_tf2_msgs.sh $(VENV)
	touch $(STAMP)

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

demo: venv
	$(PY) -m bwdp_tools.demo

bench: venv
	$(PY) bench/synth_render.py
	$(PY) bench/train_step.py
	$(PY) bench/infer.py
	$(PY) bench/node_throughput.py

clean:
	rm -rf $(VENV) demo_out demo_cache build *.egg-info ros/*.egg-info tools/*.egg-info
