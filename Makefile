# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
export PYTHONUNBUFFERED := 1

.PHONY: install run test lint bench

install:
	@command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null \
	  || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools redis-server) >/dev/null; }
	@$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'

run: install
	respkv local --nodes 3 --base-port 7001

test: install
	$(PYTHON) -m pytest

lint:
	ruff check respkv tests benchmarks

bench: install
	$(PYTHON) benchmarks/server_bench.py
