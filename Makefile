# Entry points that work on a fresh machine (Debian 12, root, Python 3.11).
#   make demo   install, start the local test bed, apply inventory/demo.yaml, show status
#   make test   install and run the whole test suite (unit + integration on real engines)
#   make lint   ruff (lint and format) and mypy, as configured in pyproject.toml
#   make plan   plan the seed fleet offline
#   make bench  the benchmarks recorded in docs/benchmarks.md
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := inventory/demo.yaml

.PHONY: venv demo down test unit lint plan bench schema

$(BIN)/fleetctl: pyproject.toml plugins/fleetctl-vllm/pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e plugins/fleetctl-vllm
	touch $@

venv: $(BIN)/fleetctl

demo: venv
	bash tests/testbed/setup.sh
	NGC_API_KEY="$${NGC_API_KEY:-demo-key-for-the-nim-stand-in}" $(BIN)/fleetctl apply -f $(DEMO) --yes
	$(BIN)/fleetctl status -f $(DEMO)
	@echo
	@echo "The demo fleet is up behind its front door: http://127.0.0.1:20080"
	@echo "  curl -s http://127.0.0.1:20080/v1/chat/completions -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"model\": \"chat-llm\", \"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]}'"
	@echo "  (add -H 'X-Customer: acme-corp' to be served by the pinned chat-llm@v3)"
	@curl -s -i http://127.0.0.1:20080/v1/chat/completions -H 'Content-Type: application/json' \
	     -d '{"model": "chat-llm", "messages": [{"role": "user", "content": "hello"}]}' | grep -i -E '^(HTTP|x-fleetctl)'
	@echo "Take it down with:  $(BIN)/fleetctl down -f $(DEMO) --yes"

down: venv
	$(BIN)/fleetctl down -f $(DEMO) --yes

lint: venv
	$(BIN)/ruff check fleetctl tests plugins
	$(BIN)/ruff format --check fleetctl tests plugins
	$(BIN)/mypy

test: venv
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q tests/unit

plan: venv
	$(BIN)/fleetctl plan --offline -f inventory/fleet.yaml

schema: venv
	$(BIN)/fleetctl schema

bench: venv
	$(BIN)/python tests/benchmarks/bench_placement.py
	$(BIN)/python tests/benchmarks/bench_plan_cli.py
	$(BIN)/python tests/benchmarks/bench_startup.py
	$(BIN)/python tests/benchmarks/bench_health.py
	$(BIN)/python tests/benchmarks/bench_state.py
	bash tests/testbed/setup.sh
	$(BIN)/python tests/benchmarks/bench_apply.py
	$(BIN)/python tests/benchmarks/bench_front_door.py
	$(BIN)/python tests/benchmarks/bench_rollouts.py
