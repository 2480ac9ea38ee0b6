# pgpis — every target installs what it needs first (.venv in the repo root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     ?= .venv
PY       := $(VENV)/bin/python
PGPIS    := $(VENV)/bin/pgpis
STAMP    := $(VENV)/.pgpis-installed
# torch 2.14.1 / torchvision 0.29.1 come from local wheels on the dev/CI machine kind;
# override on a GPU box, e.g. `make install TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export PYTHONUNBUFFERED := 1

DATA_ROOT ?= data/synthetic/deepfashion
SYNTH_ARGS ?= --identities 300 --poses 4 --seed 0
CONFIG   ?=
ARGS     ?=
# Hub access: the tests and the tiny presets run offline (all they need is local); a paper run
# (CONFIG=, IPF_CONFIG=, LDM_CONFIG= or TRUEPOSE_CONFIG= naming experiments/deepfashion/... or
# experiments/phoenix/...) may download. Your own value wins.
PAPER_CONFIGS = $(filter experiments/deepfashion/% experiments/phoenix/%,$(CONFIG) $(IPF_CONFIG) $(LDM_CONFIG) \
	$(TRUEPOSE_CONFIG) $(LDM_PHOENIX_CONFIG))
ifeq ($(PAPER_CONFIGS),)
export HF_HUB_OFFLINE ?= 1
endif

.PHONY: help install browser data data-phoenix preview demo demo-all test test-slow test-all evaluate bench clean train-ipf ipf-ablation

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install pgpis[dev] (idempotent)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

$(DATA_ROOT)/.pgpis-synthetic: | $(STAMP)
	$(PGPIS) data synth --dataset deepfashion --out $(DATA_ROOT) $(SYNTH_ARGS)

data: $(STAMP) $(DATA_ROOT)/.pgpis-synthetic ## write the synthetic DeepFashion dataset (embedded default) if absent

PHOENIX_ROOT ?= data/synthetic/phoenix
PHOENIX_SYNTH_ARGS ?= --signers 3 --videos train=24,dev=4,test=6 --frames 16-24 --seed 0

$(PHOENIX_ROOT)/.pgpis-synthetic: | $(STAMP)
	$(PGPIS) data synth --dataset phoenix --out $(PHOENIX_ROOT) $(PHOENIX_SYNTH_ARGS)

data-phoenix: $(STAMP) $(PHOENIX_ROOT)/.pgpis-synthetic ## write the synthetic Phoenix14T dataset if absent (+ preview grid)
	$(PGPIS) data preview --dataset phoenix --root $(PHOENIX_ROOT) --out outputs/preview_phoenix.png

preview: data ## preview grid of the synthetic dataset -> outputs/preview.png
	$(PGPIS) data preview --dataset deepfashion --root $(DATA_ROOT) --out outputs/preview.png

demo: data preview ## the main job on the embedded default: data, IPF, LDM, sampling, metrics -> outputs/demo/report.md
	@mkdir -p outputs/demo && date +%s > outputs/demo/.started
	$(MAKE) train-ldm
	$(PGPIS) report --outputs outputs --out outputs/demo/report.md --data-root $(DATA_ROOT) --started outputs/demo/.started

demo-all: demo ## the demo plus TruePose (adds a TruePose column to outputs/demo/report.md)
	$(MAKE) train-truepose
	$(PGPIS) report --outputs outputs --out outputs/demo/report.md --data-root $(DATA_ROOT) --started outputs/demo/.started

# The browser tests (tests/test_app_browser.py) drive Debian's Chromium through Playwright (Playwright's own browser
# download needs the internet). `make test` installs it when it can (root with apt-get); otherwise it stops before the
# suite with the one command to run. The tests themselves fail, never skip, without it.
CHROMIUM        := $(or $(PGPIS_CHROMIUM),/usr/bin/chromium)
CHROMIUM_INSTALL := apt-get update && apt-get install -y chromium

browser: ## Debian's Chromium for the browser tests (installed when run as root; else prints the command)
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make: installing Debian's Chromium for the browser tests: $(CHROMIUM_INSTALL)"; \
	  $(CHROMIUM_INSTALL) || exit 1; \
	  [ -x "$(CHROMIUM)" ] || { echo "make: chromium installed but $(CHROMIUM) is missing; set PGPIS_CHROMIUM to its binary" >&2; exit 1; }; \
	else \
	  echo "make: the browser tests (tests/test_app_browser.py) need Chromium at $(CHROMIUM), which is missing." >&2; \
	  echo "Install it (Debian/Ubuntu), then run make test again:" >&2; \
	  echo "  sudo sh -c '$(CHROMIUM_INSTALL)'" >&2; \
	  echo "(or set PGPIS_CHROMIUM to a Chromium binary you have)" >&2; \
	  exit 1; \
	fi

test: $(STAMP) browser ## import-layer contracts + fast CPU test suite (what CI runs first; installs Chromium for the browser tests when root)
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP) ## slow tests: full-size architecture builds, long CPU runs
	@# one process per file: each full-size build frees its memory before the next (24 GiB machines)
	@set -e; files=$$($(PY) -m pytest -m slow -q --collect-only 2>/dev/null | grep -o '^tests/[a-z_0-9]*\.py' | sort -u); \
	  if [ -z "$$files" ]; then echo "no slow tests"; exit 0; fi; \
	  for f in $$files; do echo "== $$f"; $(PY) -m pytest -m slow -q $$f; done

test-all: test test-slow ## both suites

EVAL_PROTOCOL ?= deepfashion-256x176
EVAL_SPLIT ?= test
GENERATED ?=

evaluate: data ## score GENERATED=DIR under EVAL_PROTOCOL (default: copy-source baseline) -> outputs/metrics.json
	$(PGPIS) evaluate --dataset deepfashion --root $(DATA_ROOT) --split $(EVAL_SPLIT) --protocol $(EVAL_PROTOCOL) \
	  --out outputs/metrics.json $(if $(GENERATED),--generated $(GENERATED),--generated outputs/copy_source --make-copy-source) $(ARGS)

# DATASET=phoenix: train-ipf / train-ldm on synthetic Phoenix14T (make data-phoenix), the tiny configs composed
# with the Phoenix overlays experiments/tiny/phoenix_{ipf,fpdm}.yaml; outputs in outputs/{ipf,ldm}_phoenix.
# Paper runs: CONFIG="experiments/deepfashion/ipf.yaml --config experiments/phoenix/ipf.yaml" (same for fpdm).
DATASET ?= deepfashion
ifeq ($(DATASET),phoenix)
TRAIN_DATA := data-phoenix
TRAIN_ROOT := $(PHOENIX_ROOT)
IPF_CONFIG ?= $(if $(CONFIG),$(CONFIG),experiments/tiny/ipf.yaml --config experiments/tiny/phoenix_ipf.yaml)
IPF_OUT    ?= outputs/ipf_phoenix
else
TRAIN_DATA := data
TRAIN_ROOT := $(DATA_ROOT)
endif
IPF_CONFIG ?= $(if $(CONFIG),$(CONFIG),experiments/tiny/ipf.yaml)
IPF_LOSS   ?= source_enhanced
IPF_OUT    ?= outputs/ipf
IPF_RUN     = --config $(IPF_CONFIG) --model.loss $(IPF_LOSS) --model.metrics_path $(IPF_OUT)/metrics.json \
	  --model.export_dir $(IPF_OUT)/fusion_model --trainer.logger.init_args.save_dir $(IPF_OUT) \
	  --trainer.logger.init_args.name $(IPF_LOSS) $(if $(filter experiments/tiny/%,$(IPF_CONFIG)),--data.root $(TRAIN_ROOT))

train-ipf: $(STAMP) $(if $(filter experiments/tiny/%,$(IPF_CONFIG)),$(TRAIN_DATA)) ## FPDM stage 1 (IPF): fit, test retrieval, export -> outputs/ipf (IPF_LOSS=baseline|source_enhanced)
	rm -rf $(IPF_OUT)/$(IPF_LOSS)
	$(PGPIS) fit $(IPF_RUN) $(ARGS)
	$(PGPIS) test $(IPF_RUN) --ckpt_path $(IPF_OUT)/$(IPF_LOSS)/checkpoints/last.ckpt $(ARGS)
	@$(PGPIS) show retrieval $(IPF_OUT)/metrics.json --rows A1 $(IPF_LOSS)

ipf-ablation: ## IPF with both losses side by side (paper Table 2: A1, A2 = baseline, A3 = source_enhanced)
	$(MAKE) train-ipf IPF_LOSS=baseline
	$(MAKE) train-ipf IPF_LOSS=source_enhanced
	@$(PGPIS) show retrieval $(IPF_OUT)/metrics.json --rows A1 baseline source_enhanced

LDM_PHOENIX_CONFIG ?= $(if $(CONFIG),$(CONFIG),experiments/tiny/fpdm.yaml --config experiments/tiny/phoenix_fpdm.yaml)
LDM_PHOENIX_OUT    ?= outputs/ldm_phoenix

.PHONY: train-ldm-phoenix
train-ldm-phoenix: $(STAMP) data-phoenix ## FPDM on synthetic Phoenix (train-ldm DATASET=phoenix): fit, sample the test split, SSIM / Hand SSIM vs copy-the-first-frame
	@test -f outputs/ipf_phoenix/fusion_model/config.json || $(MAKE) train-ipf DATASET=phoenix
	rm -rf $(LDM_PHOENIX_OUT)/tiny_fpdm_phoenix $(LDM_PHOENIX_OUT)/samples $(LDM_PHOENIX_OUT)/copy_first_frame
	$(PGPIS) fit --config $(LDM_PHOENIX_CONFIG) $(if $(filter experiments/tiny/%,$(LDM_PHOENIX_CONFIG)),--data.root $(PHOENIX_ROOT)) $(ARGS)
	$(PGPIS) evaluate --dataset phoenix --root $(PHOENIX_ROOT) --split test --protocol phoenix-260x210 \
	  --generated $(LDM_PHOENIX_OUT)/samples --baseline-out $(LDM_PHOENIX_OUT)/copy_first_frame \
	  --out $(LDM_PHOENIX_OUT)/phoenix_metrics.json --name "tiny FPDM" $(EVAL_ARGS)

ifeq ($(DATASET),phoenix)
train-ldm: train-ldm-phoenix
endif

LDM_CONFIG ?= $(if $(CONFIG),$(CONFIG),experiments/tiny/fpdm.yaml)
LDM_OUT    ?= outputs/ldm
STORE      ?=# train-ldm STORE=DIR: train stage 2 from a feature store (written first by pgpis data cache if DIR has none; docs/feature-store.md)

ifneq ($(DATASET),phoenix)
.PHONY: train-ldm
train-ldm: $(STAMP) $(if $(filter experiments/tiny/%,$(LDM_CONFIG)),data) ## FPDM stage 2: fit (uses train-ipf's export), sample the test split -> outputs/ldm/{metrics.json,grid.png}, vs copy-source / background-only
	@test -f $(IPF_OUT)/fusion_model/config.json || { if [ -n "$(filter-out experiments/tiny/%,$(LDM_CONFIG))" ]; then \
	  echo "train-ldm: stage 1's export $(IPF_OUT)/fusion_model is missing; train it first with the matching IPF config," \
	    "e.g. make train-ipf CONFIG=experiments/deepfashion/ipf.yaml ARGS=\"--data.root DIR\"" >&2; exit 2; \
	  else $(MAKE) train-ipf CONFIG=; fi; }
	rm -rf $(LDM_OUT)/tiny_fpdm $(LDM_OUT)/samples $(LDM_OUT)/metrics.json $(LDM_OUT)/grid.png
	$(if $(STORE),test -f $(STORE)/manifest.json || $(PGPIS) data cache --config $(LDM_CONFIG) $(if $(filter experiments/tiny/%,$(LDM_CONFIG)),--data.root $(TRAIN_ROOT)) --out $(STORE) $(ARGS))
	$(PGPIS) fit --config $(LDM_CONFIG) $(if $(filter experiments/tiny/%,$(LDM_CONFIG)),--data.root $(TRAIN_ROOT)) $(if $(STORE),--store $(STORE)) $(ARGS)
	@$(PGPIS) show pairs $(LDM_OUT)/metrics.json
endif

TRUEPOSE_CONFIG ?= $(if $(CONFIG),$(CONFIG),experiments/tiny/truepose.yaml)
TRUEPOSE_OUT    ?= outputs/truepose

.PHONY: train-truepose
train-truepose: $(STAMP) $(if $(filter experiments/tiny/%,$(TRUEPOSE_CONFIG)),data) ## TruePose (Siamese LDM): fit, sample the test split -> outputs/truepose, metrics beside FPDM's tiny run
	rm -rf $(TRUEPOSE_OUT)/tiny_truepose $(TRUEPOSE_OUT)/samples $(TRUEPOSE_OUT)/metrics.json
	$(PGPIS) fit --config $(TRUEPOSE_CONFIG) $(ARGS)
	@$(PY) -c "import json, pathlib; from pgpis.report import image_table; \
	  runs = {n: json.loads(pathlib.Path(f).read_text()) for n, f in (('TruePose', '$(TRUEPOSE_OUT)/metrics.json'), \
	  ('FPDM', 'outputs/ldm/metrics.json')) if pathlib.Path(f).exists()}; print('\n'.join(image_table(runs)))"

.PHONY: notebooks
notebooks: $(STAMP) ## execute the exploration notebooks on the demo checkpoints (runs make demo / train-truepose first if absent) -> outputs/notebooks/
	@test -f outputs/ldm/tiny_fpdm/checkpoints/last.ckpt || $(MAKE) demo
	@test -f outputs/truepose/tiny_truepose/checkpoints/last.ckpt || $(MAKE) train-truepose
	mkdir -p outputs/notebooks && cp notebooks/explore_fpdm.ipynb notebooks/explore_truepose.ipynb outputs/notebooks/
	MPLBACKEND= $(VENV)/bin/jupyter execute --inplace --timeout=3600 outputs/notebooks/explore_fpdm.ipynb outputs/notebooks/explore_truepose.ipynb
	@echo "notebooks: executed copies with figures in outputs/notebooks/"

APP_DEFAULT_CHECKPOINT := outputs/ldm/tiny_fpdm/checkpoints/last.ckpt
APP_CHECKPOINT ?= $(APP_DEFAULT_CHECKPOINT)
PORT ?= 7860

.PHONY: app
app: $(STAMP) ## interactive Gradio demo of APP_CHECKPOINT (default: the demo's FPDM, runs make demo if absent) on 127.0.0.1:PORT (7860)
	@test -f $(APP_CHECKPOINT) || test "$(APP_CHECKPOINT)" != "$(APP_DEFAULT_CHECKPOINT)" || $(MAKE) demo
	GRADIO_ANALYTICS_ENABLED=False $(PGPIS) app --checkpoint $(APP_CHECKPOINT) --host 127.0.0.1 --port $(PORT) $(ARGS)

bench: $(STAMP) ## benchmarks (print measured figures and ratios)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## remove outputs (keeps .venv and data)
	rm -rf outputs lightning_logs
