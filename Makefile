# make run   - install into .venv and run every role on the embedded defaults (Redis, SQLite)
# make test  - install what the tests need (redis-server, PostgreSQL, Dovecot, chromium via apt when missing) and run them
# make bench - end-to-end figures (see ops/bench)
# make fuzz  - generated hostile input for every parser (FUZZ_EXAMPLES per property)
# make chaos - kill role processes, restart Redis, lock the database under load; check nothing is lost
# make chaos-pg - the same on a throwaway PostgreSQL cluster, also restarted and its sessions terminated

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT    := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

.PHONY: run test bench fuzz chaos chaos-pg lint system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.run

run: $(VENV)/.run
	$(BIN)/switchboard run

# Servers the integration tests start themselves: redis-server, PostgreSQL's initdb/pg_ctl
# and Dovecot (dovecot-imapd; the fixtures run it with their own config and port); Debian's
# chromium for the console's browser tests (Playwright drives it, it downloads no browser), with
# a CJK font so the Chinese screenshots show glyphs; the status page's browser test uses it too.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v psql >/dev/null || missing="$$missing postgresql-client"; \
	{ command -v dovecot || ls /usr/sbin/dovecot; } >/dev/null 2>&1 || missing="$$missing dovecot-imapd"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(APT) update -q && $(APT) install -y -q $$missing; \
		if echo "$$missing" | grep -q dovecot; then \
			$(SUDO) service dovecot stop >/dev/null 2>&1 || true; \
		fi; \
	fi

lint: $(VENV)/.test
	$(BIN)/ruff check .

# Bytecode is written even where the environment says PYTHONDONTWRITEBYTECODE=1 (Python only
# honours a non-empty value): the tests start a few hundred role processes (`python -m ops.cli`),
# and each would otherwise compile the project's modules again, ~0.6 s of CPU apiece.
test: system-deps $(VENV)/.test lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest

# Generated inputs per parser property (make test runs a few hundred of each).
FUZZ_EXAMPLES ?= 100000
fuzz: $(VENV)/.test
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz -q --timeout=0 --hypothesis-show-statistics

# Role processes SIGKILLed under load, Redis restarted, the database locked; then the invariants.
chaos: $(VENV)/.run
	$(BIN)/python -m ops.chaos $(CHAOS_ARGS)

# The same on PostgreSQL: a cluster of its own (initdb + pg_ctl, as the tests start one), which
# is restarted under load and whose sessions are terminated; removed after the run.
chaos-pg: system-deps $(VENV)/.run
	$(BIN)/python -m ops.chaos --postgres $(CHAOS_ARGS)

bench: $(VENV)/.run
	$(BIN)/python -m ops.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data bench
