# Two entry points for a fresh machine:
#   make sweep   set everything up, then run the default sweep (snakemake --cores all)
#   make test    set everything up, then run the whole test suite
#   make bench-peers  the peer tools bench/peers_*.py compare with (Ray Tune); make test installs them
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet --constraint constraints.txt
STAMP  := $(VENV)/.installed
PEERS  := $(VENV)/.peers-installed

.PHONY: sweep test test-fast bench-peers services-packages lint clean

sweep: $(STAMP)
	$(BIN)/snakemake --cores all

# bench-peers: so that the smoke runs of bench/peers_*.py run for real (about 20 s, 240 MB; DEVELOPERS.md).
test: $(STAMP) bench-peers services-packages lint
	bash tests/run-suite

# Unit and workflow tests only: no Slurm, MariaDB or PostgreSQL.
test-fast: $(STAMP)
	$(BIN)/pytest -ra -m "not services and not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench workflow/scripts
	$(BIN)/snakemake --lint

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) --editable '.[allennlp,mysql,postgresql,tracking,test]'
	# AllenNLP 2.10.1 and its vision/sharding imports pin versions that predate Python 3.11:
	# installed without their dependencies, on top of the pins above (see DEVELOPERS.md).
	$(PIP) --no-deps torchvision==0.16.2 fairscale==0.4.6 allennlp==2.10.1
	touch $@

bench-peers: $(PEERS)

$(PEERS): $(STAMP) bench/requirements-peers.txt constraints.txt
	$(PIP) --requirement bench/requirements-peers.txt
	touch $@

# Debian packages of the servers the service tests start on 127.0.0.1 (tests/services/).
services-packages:
	bash tests/services/install-packages

clean:
	rm -rf results .snakemake report.html
