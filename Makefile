# Two entry points: `make demo` and `make test`. Both install what they need
# (once: stamps under .build/ make a second run reinstall nothing).
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
BUILD := $(ROOT)/.build
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-scipy \
	python3-h5py python3-venv xvfb
# the same pins as pyproject.toml's optional dependencies (torch, dask, test)
PIP_PACKAGES := torch==2.13.0 safetensors==0.7.0 pytest==8.3.3 pytest-qgis==5.0.2 'dask[distributed]==2026.8.0' distributed==2026.8.0 hypothesis==6.170.17 onnxruntime==1.32.0 onnx==1.16.2 ml_dtypes==0.3.2
export QT_QPA_PLATFORM := offscreen

.PHONY: demo test test-fast install bench bench-quality clean package

install: $(BUILD)/install.stamp

$(BUILD)/apt.stamp:
	@mkdir -p $(BUILD)
	@if dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | grep -vq 'install ok installed' \
	   || [ "$$(dpkg-query -W -f='$${Status}\n' $(APT_PACKAGES) 2>/dev/null | wc -l)" -lt "$(words $(APT_PACKAGES))" ]; then \
	  echo "Installing Debian packages: $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@touch $@

$(BUILD)/venv.stamp: $(BUILD)/apt.stamp
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q $(PIP_PACKAGES)
	@touch $@

# The plugin folder must be named diffusion_pansharpening wherever the clone lives:
# a symlink gives QGIS (QGIS_PLUGINPATH) and Python one stable package name.
$(BUILD)/install.stamp: $(BUILD)/venv.stamp pyproject.toml
	mkdir -p $(BUILD)/plugins
	ln -sfn $(ROOT) $(BUILD)/plugins/diffusion_pansharpening
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

demo: install
	$(PY) scripts/demo.py

test: install
	$(PY) -m pytest -q

# The unit tests only (markers: tests/conftest.py): no QGIS, training, or long runs.
test-fast: install
	$(PY) -m pytest -q -m unit

# The zip QGIS's Plugin Manager installs (Install from ZIP): dist/diffusion_pansharpening-<version>.zip
package:
	/usr/bin/python3 scripts/package.py

# Orfeo Toolbox, a peer in the benchmarks only (matplotlib for the plot comes with
# python3-qgis). BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--size 4000".
BENCH_APT_PACKAGES := otb-bin

$(BUILD)/otb.stamp:
	@mkdir -p $(BUILD)
	@if [ "$$(dpkg-query -W -f='$${Status}\n' $(BENCH_APT_PACKAGES) 2>/dev/null | grep -c 'install ok installed')" \
	     -lt "$(words $(BENCH_APT_PACKAGES))" ]; then \
	  echo "Installing Debian packages: $(BENCH_APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $(BENCH_APT_PACKAGES) >/dev/null; \
	fi
	@touch $@

bench: install $(BUILD)/otb.stamp
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# Leave one scene out (issue 17): trains the missing folds (hours of CPU), writes docs/quality.md
bench-quality: install
	$(PY) benchmarks/generalisation.py --train $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(VENV)
