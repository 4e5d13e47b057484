# One-command set-up: `make demo` and `make test` create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast gui weights bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,hardware,cluster]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/micromanip demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -m "not slow"

gui: $(STAMP)
	$(VENV)/bin/micromanip gui --rig sim

bench: $(STAMP)
	$(PY) benchmarks/sim_render.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Rebuild every shipped model from scratch, deterministically (CPU: about 1.5 hours on 2 cores).
DEPTH_SET := runs/data/depth/manifest.csv
SEG_SET := runs/data/seg/manifest.csv
MM := $(VENV)/bin/micromanip

$(DEPTH_SET): | $(STAMP)
	$(MM) sim dataset depth --n-sperm 1200 --seed 0 --out runs/data/depth

$(SEG_SET): | $(STAMP)
	$(MM) sim dataset seg --n-tiles 800 --seed 0 --out runs/data/seg

W := perception/weights

weights: $(W)/depth_classifier.pt $(W)/unext_seg.pt $(W)/otmr_pose.pt $(W)/otmr_depth.pt

$(W)/depth_classifier.pt: configs/train/depth.yaml $(DEPTH_SET) | $(STAMP)
	$(MM) train depth --config configs/train/depth.yaml
	$(MM) install-weights runs/depth/best.pt --name depth_classifier --data-note "simulated z-stacks, 1200 sperm x 9 planes, seed 0"

$(W)/unext_seg.pt: configs/train/seg.yaml $(SEG_SET) | $(STAMP)
	$(MM) train seg --config configs/train/seg.yaml
	$(MM) install-weights runs/seg/best.pt --name unext_seg --data-note "simulated 256x256 tiles at half scale, 800, seed 0"

$(W)/otmr_pose.pt: configs/train/otmr-pose.yaml | $(STAMP)
	$(MM) train otmr-pose --config configs/train/otmr-pose.yaml
	$(MM) install-weights runs/otmr-pose/best.pt --name otmr_pose --data-note "shared/data/otmr_2025 (1600 real images, robot 3), stratified 60/20/20 split"

$(W)/otmr_depth.pt: configs/train/otmr-depth.yaml | $(STAMP)
	$(MM) train otmr-depth --config configs/train/otmr-depth.yaml
	$(MM) install-weights runs/otmr-depth/best.pt --name otmr_depth --data-note "shared/data/otmr_2025, stratified 60/20/20 split"
