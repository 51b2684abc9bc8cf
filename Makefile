# The two commands of the README: `make demo` and `make test`. Each sets up what it needs:
# a virtual environment at .venv/ with the pinned Python dependencies, and (as root) the Debian
# packages for the Arm toolchain and QEMU.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1

UV_VERSION := 0.13.8
DEBS := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm

.PHONY: demo test setup venv sysdeps lint format clean

setup: venv sysdeps

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv installs the same pinned packages as pip does (same versions, checked with pip freeze),
	@# in about 34 s instead of pip's 132 s here (both timed on the 2-core machine while it trained
	@# a model), bytecode compiled as pip does; pip is what is left if uv fails.
	@if $(PY) -m pip install -q uv==$(UV_VERSION) && \
	  $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -e '.[dev]'; then :; else \
	  echo "uv did not install the dependencies: installing them with pip"; \
	  $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -e '.[dev]'; fi
	@touch $@

sysdeps:
	@missing=""; \
	command -v arm-none-eabi-gcc >/dev/null || missing="$$missing gcc-arm-none-eabi libnewlib-arm-none-eabi"; \
	test -e /usr/lib/arm-none-eabi/newlib/libc.a -o -e /usr/lib/arm-none-eabi/lib/libc.a || missing="$$missing libnewlib-arm-none-eabi"; \
	command -v qemu-system-arm >/dev/null || missing="$$missing qemu-system-arm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null; \
	  else \
	    echo "missing:$$missing -- run: sudo apt-get install $(DEBS)"; exit 1; \
	  fi; \
	fi

# pytest exits 5 when it collects no tests: say so, and do not fail CI on an empty suite.
test: setup lint
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

demo: setup
	$(PY) tools/demo.py

# The style the project holds itself to: ruff (pyproject.toml: pycodestyle, pyflakes, import
# sorting, PEP 8 naming, 100 columns) over every Python package, and .clang-format over every C/C++
# file but the generated ones (the exporter's firmware/lib/model/ and the host stand-in's model
# headers). `make format` applies the C format.
PY_DIRS := nanocore trainer nanobench nanolab tools tests firmware
C_FILES = $(shell { git ls-files '*.c' '*.h' '*.cpp' '*.cc' 2>/dev/null || \
	find firmware tests -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.cc'; } | \
	grep -v -e '^firmware/lib/model/' -e '^firmware/ports/host/standin/model_')

lint: venv
	$(VENV)/bin/ruff check $(PY_DIRS)
	@$(VENV)/bin/clang-format --dry-run --Werror $(C_FILES) && echo "clang-format: $(words $(C_FILES)) C/C++ files clean"

format: venv
	$(VENV)/bin/clang-format -i $(C_FILES)

clean:
	rm -rf build runs .pytest_cache

# Firmware builds of the default model (firmware/lib/model/); nanobench.firmware does the same
# for any exported model folder. host: ASan/UBSan POSIX build; qemu: the mps2-an386 image.
.PHONY: firmware-host firmware-qemu
firmware-host:
	$(MAKE) -C firmware/ports/host
firmware-qemu:
	$(MAKE) -f firmware/ports/qemu/firmware.mk
