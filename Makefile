# One-command set-up: `make demo` and `make test` create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast gui weights bench results lock wheel-check clean

# constraints.txt pins every package of the tested environment (Linux x86-64, Python 3.11): `make` and CI
# install exactly these; pyproject.toml keeps the ranges a user's own install may take.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,hardware,cluster]'
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

# docs/results.md and the README's Measured table, regenerated from docs/results/*.json
results: $(STAMP)
	$(PY) benchmarks/result_store.py

# Re-resolve the pins after a change of dependencies (resolves only: installs nothing).
lock: $(STAMP)
	$(PY) -m pip install --dry-run --ignore-installed --quiet --report $(VENV)/lock-report.json '.[dev,hardware,cluster]'
	$(PY) -c 'import json, sys; r = json.load(open(sys.argv[1])); \
	pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in r["install"]); \
	print("# Exact versions for make and CI (Linux x86-64, Python 3.11), written by make lock; ranges in pyproject.toml."); \
	print("\n".join(f"{n}=={v}" for n, v in sorted(pins, key=lambda p: p[0].lower()) if n != "micromanip"))' \
	$(VENV)/lock-report.json > constraints.txt

# Build the wheel and run it from a fresh venv outside the checkout (demo + GUI screenshot; minutes).
wheel-check: $(STAMP)
	$(PY) tests/wheel_check.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Rebuild every shipped model from scratch, deterministically (CPU: about 1.5 hours on 2 cores).
DEPTH_SET := runs/data/depth/manifest.csv
SEG_SET := runs/data/seg/manifest.csv
MM := $(VENV)/bin/micromanip

$(DEPTH_SET): | $(STAMP)
	$(MM) sim dataset depth --n-sperm 1000 --seed 0 --out runs/data/depth

$(SEG_SET): | $(STAMP)
	$(MM) sim dataset seg --n-tiles 2400 --seed 0 --out runs/data/seg

W := perception/weights

weights: $(W)/depth_classifier.pt $(W)/unext_seg.pt $(W)/otmr_pose.pt $(W)/otmr_depth.pt

$(W)/depth_classifier.pt: configs/train/depth.yaml $(DEPTH_SET) | $(STAMP)
	$(MM) train depth --config configs/train/depth.yaml
	$(MM) install-weights runs/depth/best.pt --name depth_classifier --data-note "simulated z-stacks recorded as an operator does (live cells, focus-criterion zero plane, varied recording chains), 1000 sperm x 9 planes, seed 0"

# The head segmentation also learns from the labelled real video in ../shared when it is there (frames
# before the validation stretch); without it, from the twin alone, and its model card says which.
SHARED ?= ../shared
REAL_VIDEO := $(SHARED)/data/sperm_video_real
SEG_TILES_NOTE := 2400 simulated tiles of randomised rigs (10x-40x, bright field and phase contrast; half the pipettes aimed at a head as in an aspiration), seed 0
SEG_NOTE := $(if $(wildcard $(REAL_VIDEO)/annotations/train.json),$(SEG_TILES_NOTE); real frames 3-115 of shared/data/sperm_video_real (frames 116-151 held out for validation),$(SEG_TILES_NOTE); twin data only (no ../shared: no real frames))

# one thread: on a shared 2-core machine torch's second thread spent more time waiting than working
$(W)/unext_seg.pt: configs/train/seg.yaml $(SEG_SET) | $(STAMP)
	OMP_NUM_THREADS=1 $(MM) train seg --config configs/train/seg.yaml --real-video $(REAL_VIDEO)
	$(MM) install-weights runs/seg/best.pt --name unext_seg --data-note "$(SEG_NOTE)"

$(W)/otmr_pose.pt: configs/train/otmr-pose.yaml | $(STAMP)
	$(MM) train otmr-pose --config configs/train/otmr-pose.yaml
	$(MM) install-weights runs/otmr-pose/best.pt --name otmr_pose --data-note "shared/data/otmr_2025 (1600 real images, robot 3), stratified 60/20/20 split"

$(W)/otmr_depth.pt: configs/train/otmr-depth.yaml | $(STAMP)
	$(MM) train otmr-depth --config configs/train/otmr-depth.yaml
	$(MM) install-weights runs/otmr-depth/best.pt --name otmr_depth --data-note "shared/data/otmr_2025, stratified 60/20/20 split"
