# Two commands on a fresh machine (Python 3.11, gcc, make, apt):
#   make demo   set up .venv and scan the bundled captures into out/
#   make test   set up .venv (+ tshark via apt when root) and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv system-deps bench bench-live bench-startup captures clean fuzz stress variation

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@# Hyperscan speeds up payload prefiltering where its wheel installs; a compiled re is the fallback.
	@$(BIN)/python -m pip install -q 'hyperscan>=0.7' 2>/dev/null || echo "hyperscan not available: content prefilter uses re"
	@# Compile the numba kernels into their on-disk cache now, so the first scan is as quick as the next ones.
	$(BIN)/python -m inspector.warmup
	touch $(STAMP)

venv: $(STAMP)

# System packages the tests use for real: tshark (behind pyshark, cross-checks), libpcap (live capture),
# iproute2 and tcpreplay (namespaces, veth pairs and replay for the live tests), chromium (the HTML report
# is rendered headless).  Installed through apt when run as root; otherwise those tests skip.
system-deps:
	@missing=""; \
	command -v tshark >/dev/null 2>&1 || missing="$$missing tshark"; \
	command -v tcpreplay >/dev/null 2>&1 || missing="$$missing tcpreplay"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ldconfig -p 2>/dev/null | grep -q libpcap.so || missing="$$missing libpcap0.8"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing through apt:$$missing"; \
	    apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
	    echo "apt could not install:$$missing (the tests that need them will skip)"; \
	  else \
	    echo "missing and not root:$$missing (the tests that need them will skip)"; \
	  fi; \
	fi

demo: venv
	$(BIN)/inspector scan captures/*.pcap --site captures/site-dc-north.yaml --out out

test: venv system-deps
	$(BIN)/python -m pytest -q tests

# Two generated captures of different shapes (bench/data/, not committed): tshark, --flows-only, full scan and
# full scan with 2 workers, medians of 3 rounds, ratios to tshark and peak memory; then the content engines.
bench: venv system-deps
	$(BIN)/python bench/bench_suite.py --runs 3
	$(BIN)/python bench/bench_content.py

# inspector --help, scan of an empty capture, tshark -r of it, first scan of a fresh install
bench-startup: venv system-deps
	$(BIN)/python bench/bench_startup.py

# needs root (network namespaces, veth, tcpreplay)
bench-live: venv system-deps
	$(BIN)/python bench/bench_live.py

# Coverage-guided fuzzing (atheris/libFuzzer) of every target in tests/fuzz/targets.py, FUZZ_SECONDS each;
# inputs that break a target land in tests/fuzz/crashes/ and are replayed by make test.
FUZZ_SECONDS ?= 60
fuzz: venv
	$(BIN)/python -m pip install -q 'atheris>=2.3'
	$(BIN)/python tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

# Flood tests at 10x the make-test sizes (millions of packets): memory bounded, evictions counted.
STRESS_SCALE ?= 10
stress: venv
	INSPECTOR_STRESS_SCALE=$(STRESS_SCALE) $(BIN)/python -m pytest -q -s tests/test_floods.py

# The variation harness: captures/generate_variation.py with VARIATION_SEEDS seeds (randomised counts,
# periods, jitter, sizes, hosts, names, loss and reordering), each scanned with the default policy; prints
# per seed and in total the recall (planted channels found as exactly one incident by their detector) and
# the false alerts.  make test runs two seeds (tests/test_variation.py).
VARIATION_SEEDS ?= 20
variation: venv
	$(BIN)/python tests/variation.py --seeds $(VARIATION_SEEDS)

captures: venv
	$(BIN)/python captures/generate.py
	$(BIN)/python captures/generate_content.py
	$(BIN)/python captures/generate_policy.py

clean:
	rm -rf $(VENV) out build dist *.egg-info
