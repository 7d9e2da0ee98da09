# Two entry points (see README):  make book [PROFILE=ci|default|full]   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= default
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install book test unit nbval clean help chromium bench-peers bench-official bench-official-srgnn

help:
	@echo "make book [PROFILE=ci|default|full]  - set up, run every notebook, build the HTML book"
	@echo "make test                            - set up, run unit tests and nbval notebook checks"
	@echo "make bench-peers [ARGS=...]          - time our training step next to RecBole's (own venv)"
	@echo "make bench-official ARGS=...         - our GRU4Rec next to the official PyTorch GRU4Rec (own venv)"
	@echo "make bench-official-srgnn ARGS=...   - our SR-GNN next to the official SR-GNN code (the same venv)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

book: $(STAMP) chromium
	$(BIN)/python -m srs_core.publish.book --profile $(PROFILE)

# Headless Chromium for the page check (Debian package; best effort: the
# book still builds without it, and says that the check was skipped).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: could not install chromium; the book's page check will be skipped"; }

# The unit tests run on TEST_WORKERS pytest-xdist processes (one torch thread
# each, tests/conftest.py), a test module per worker at a time; TEST_WORKERS=0
# runs them in this one process.
TEST_WORKERS ?= 2
unit: $(STAMP) chromium
	$(BIN)/python -m pytest tests -q --durations=20 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# nbval re-runs the committed notebooks (the ci profile) and compares the cells
# marked NBVAL_CHECK_OUTPUT. The rule (notebooks/README.md): those cells print
# only what is identical on every CPU and thread count (counts, statistics,
# which runs exist, settled verdict words); trained metrics are compared with
# notebooks/reference/*.json within a stated tolerance by
# srs_core.publish.reference.check_metrics, never as printed digits.
# They run in the book's order (srs_core.publish.book --list), since the figures
# read what the diagnosis chose.
# `make test` runs nbval before the unit tests: tests/test_user_path.py then
# builds the ci book without the real file from a copy of the synthetic-data
# runs nbval has just trained, instead of training them a second time.
# The committed outputs include the real yoochoose-100k dev sample, so where
# ../shared/data is absent nbval is skipped with a note; the same notebooks
# then still run without it in tests/test_user_path.py.
REAL_DEV := ../shared/data/yoochoose-100k-dev/yoochoose-clicks.dat
nbval: $(STAMP)
	@if [ -f "$(REAL_DEV)" ]; then \
	  rm -rf _build/work/ci && \
	  $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider $$($(BIN)/python -m srs_core.publish.book --list) -q; \
	else \
	  echo "nbval skipped: $(REAL_DEV) is absent, and the committed notebook outputs were made with it"; \
	fi

test: nbval unit

# Our training step next to RecBole's (benchmarks/bench_peers.py). RecBole
# needs numpy < 2, so it gets its own pinned environment, .venv-peers.
# Not part of book or test; pass options with ARGS="--models stamp --items 1e4".
PEERS := .venv-peers
$(PEERS)/.installed: benchmarks/peers-requirements.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet -r benchmarks/peers-requirements.txt
	touch $@

bench-peers: $(PEERS)/.installed
	PYTHONPATH=$(CURDIR) $(PEERS)/bin/python benchmarks/bench_peers.py $(ARGS)

# Our GRU4Rec next to the official PyTorch GRU4Rec (benchmarks/bench_official.py),
# whose code is not on PyPI: clone it yourself and pass its folder, e.g.
# make bench-official ARGS="--official-dir ../gru4rec-official --params yoochoose_xe_shared_best.py --data DATA"
OFFICIAL := .venv-official
$(OFFICIAL)/.installed: benchmarks/official-requirements.txt
	test -x $(OFFICIAL)/bin/python || $(PYTHON) -m venv $(OFFICIAL)
	$(OFFICIAL)/bin/python -m pip install --quiet -r benchmarks/official-requirements.txt
	touch $@

bench-official: $(STAMP) $(OFFICIAL)/.installed
	$(BIN)/python benchmarks/bench_official.py --official-python $(OFFICIAL)/bin/python $(ARGS)

# make bench-official-srgnn ARGS="--official-dir ../srgnn-official --data DATA --steps 300"
bench-official-srgnn: $(STAMP) $(OFFICIAL)/.installed
	$(BIN)/python benchmarks/bench_official_srgnn.py --official-python $(OFFICIAL)/bin/python $(ARGS)

clean:
	rm -rf _build
