# Two commands on a fresh machine (Python 3.11, gcc, make, apt):
#   make demo   set up .venv and scan the bundled captures into out/
#   make test   set up .venv (+ tshark via apt when root) and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv system-deps bench captures clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@# Hyperscan speeds up payload prefiltering where its wheel installs; a compiled re is the fallback.
	@$(BIN)/python -m pip install -q 'hyperscan>=0.7' 2>/dev/null || echo "hyperscan not available: content prefilter uses re"
	touch $(STAMP)

venv: $(STAMP)

# tshark backs pyshark and the cross-check tests; install it when we can (root), else those tests skip.
system-deps:
	@if ! command -v tshark >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing tshark (apt)"; \
	    apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null; \
	  else \
	    echo "tshark not found and not root: tshark-based tests will be skipped"; \
	  fi; \
	fi

demo: venv
	$(BIN)/inspector scan captures/*.pcap --site captures/site-dc-north.yaml --out out

test: venv system-deps
	$(BIN)/python -m pytest -q tests

bench: venv system-deps
	$(BIN)/python bench/bench_scan.py

captures: venv
	$(BIN)/python captures/generate.py
	$(BIN)/python captures/generate_content.py

clean:
	rm -rf $(VENV) out build dist *.egg-info
