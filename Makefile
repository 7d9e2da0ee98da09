# Two entry points (see README):  make book [PROFILE=ci|default|full]   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= default
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install book test unit nbval clean help chromium

help:
	@echo "make book [PROFILE=ci|default|full]  - set up, run every notebook, build the HTML book"
	@echo "make test                            - set up, run unit tests and nbval notebook checks"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

book: $(STAMP) chromium
	$(BIN)/python -m srs_core.book --profile $(PROFILE)

# Headless Chromium for the page check (Debian package; best effort: the
# book still builds without it, and says that the check was skipped).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: could not install chromium; the book's page check will be skipped"; }

unit: $(STAMP) chromium
	$(BIN)/python -m pytest tests -q

nbval: $(STAMP)
	rm -rf _build/work/ci
	$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider notebooks -q

test: unit nbval

clean:
	rm -rf _build
