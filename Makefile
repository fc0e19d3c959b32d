# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
export PYTHONUNBUFFERED := 1
# Written once the packages are installed; pyproject.toml newer than it, or a
# respkv that no longer imports from this checkout, means install again.
STAMP := build/.installed

.PHONY: install packages run test lint bench

install:
	@if [ ! -f $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ] || ! command -v respkv >/dev/null \
	    || ! (cd / && $(PYTHON) -c 'import sys, respkv, redis, pytest; \
	          sys.exit(respkv.__file__ != sys.argv[1])' '$(CURDIR)/respkv/__init__.py') 2>/dev/null; then \
	  $(MAKE) --no-print-directory packages; fi

packages:
	@command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null \
	  || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools redis-server) >/dev/null; }
	@$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

run: install
	respkv local --nodes 3 --base-port 7001

test: install
	$(PYTHON) -m pytest

lint:
	ruff check respkv tests benchmarks jepsen raftsim testsupport

bench: install
	$(PYTHON) benchmarks/server_bench.py
