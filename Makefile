# Classcast — `make run` starts a server, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The install (and the fan-out's C extension it builds) is redone when either changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py signaling/_sendmany.c | sha1sum | cut -c1-12)

WEB_STAMP := web/dist/.built
WEB_DEPS := web/node_modules/.installed
WEB_SRC := $(shell find web/src web/test -type f 2>/dev/null) web/build.mjs web/tsconfig.json

BENCH_NODE := bench/node-peer/node_modules/.installed

# A Learning Record Store for the xAPI tests (ralph's, with its file-system backend), in a
# virtualenv of its own: ralph's LRS pins its web stack (fastapi, uvicorn, ...) exactly.
LRS_VENV ?= .venv-lrs
LRS_RALPH := ralph-malph[cli,lrs]==5.1.0
LRS_STAMP := $(LRS_VENV)/.installed-ralph-5.1.0

.PHONY: run test lint fmt fuzz bench bench-full bench-scale install web system-deps browser-deps screenshots clean lrs

$(STAMP): pyproject.toml setup.py signaling/_sendmany.c
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# apt-get waits for the dpkg lock (other work may hold it) and prints one line per package step,
# so a long install (Chromium) shows progress. Needs root, as on the project's machines and CI.
APT := apt-get -o DPkg::Lock::Timeout=600
APT_INSTALL := install_debs() { \
	  [ "$$(id -u)" = 0 ] || { echo "Installing Debian packages needs root: run as root or install$$*" >&2; return 1; }; \
	  set -o pipefail; $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -o Dpkg::Progress-Fancy=0 "$$@" 2>&1 \
	  | { grep --line-buffered -E '^(Get:|Unpacking|Setting up|E:)' || true; }; }; install_debs

# Debian packages the build needs, installed when absent: venv for Python, a C compiler and
# Python's headers for the fan-out's extension, Node.js and npm for the web client, redis-server
# for the tests of cluster mode.
system-deps:
	@missing=""; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	test -f "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" \
	  || missing="$$missing python3-dev"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v taskset >/dev/null || missing="$$missing util-linux"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(APT_INSTALL) $$missing; \
	fi

# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright), with an
# emoji font so reactions render.
browser-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing="$$missing fonts-noto-color-emoji"; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(APT_INSTALL) $$missing; \
	fi

# The web client: npm packages from the lockfile, then one bundle per page into web/dist.
$(WEB_DEPS): web/package.json web/package-lock.json
	@$(MAKE) --no-print-directory system-deps
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_STAMP): $(WEB_DEPS) $(WEB_SRC)
	cd web && ./node_modules/.bin/tsc --noEmit -p . && node build.mjs
	@touch $@

web: $(WEB_STAMP)

run: $(STAMP) $(WEB_STAMP)
	$(PY) -m classroom serve

# The Node.js socket.io peer and load generator the benchmarks compare against.
$(BENCH_NODE): bench/node-peer/package.json bench/node-peer/package-lock.json
	@$(MAKE) --no-print-directory system-deps
	cd bench/node-peer && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ralph's LRS imports requests without declaring it: installed beside it.
$(LRS_STAMP):
	@$(MAKE) --no-print-directory system-deps
	@test -x $(LRS_VENV)/bin/python || $(PYTHON) -m venv $(LRS_VENV)
	$(LRS_VENV)/bin/python -m pip install -q '$(LRS_RALPH)' 'requests>=2.31,<3'
	@rm -f $(LRS_VENV)/.installed-* && touch $@

lrs: $(LRS_STAMP)

test: $(STAMP) $(WEB_STAMP) $(BENCH_NODE) $(LRS_STAMP) browser-deps
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The property-based tests of every socket command and HTTP route, long: thousands of fresh
# examples per test (FUZZ_EXAMPLES=n to change), failures shrunk and kept in .hypothesis/.
# `make test` runs the same tests with the short, derandomized `ci` profile.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -o timeout=0 tests/fuzz

# Benchmarks write their figures into docs/benchmarks.md and docs/bench-fanout.png:
# `make bench` is the quick pass (minutes), `make bench-full` the whole matrix.
bench: $(STAMP) $(BENCH_NODE)
	BENCH_MODE=quick $(PY) bench/run.py

bench-full: $(STAMP) $(BENCH_NODE)
	BENCH_MODE=full $(PY) bench/run.py

# One session of 10,000 learners (bench/scale/README.md; `make bench` runs it at 500, bench-full at
# 2,000): Classcast and the Node peer, each alone and clustered on a private Redis. Prints its
# markdown section (docs/benchmarks.md's hand part has the last one), keeps the raw figures. Long:
# ~8 minutes a round of the four rows, 3 rounds.
bench-scale: $(STAMP) $(BENCH_NODE)
	$(PY) bench/scale/harness.py --mode full --json bench/scale/last-run.json

# PNGs of the four pages from a scripted session, for the README.
screenshots: $(STAMP) $(WEB_STAMP) browser-deps
	$(PY) -m tests.web.screenshots docs/screenshots

clean:
	rm -rf $(VENV) $(LRS_VENV) .pytest_cache .ruff_cache *.egg-info web/node_modules web/dist
