# The full benchmark image for QEMU mps2-an386: portable core + AOT backend + the default (or a
# given) model, on this directory's port (startup, linker script, board_qemu.c, Makefile).
#
#   make -f firmware/ports/qemu/firmware.mk                          build/qemu/nano_tflm.elf
#   make -f firmware/ports/qemu/firmware.mk SELFTEST=1               ..._selftest.elf (self-test at boot)
#   make -f firmware/ports/qemu/firmware.mk MODEL_DIR=build/x/export OUT=build/x/qemu/nano_tflm.elf
#   make -f firmware/ports/qemu/firmware.mk FORCE_C99=1              C99 kernels instead of DSP
#
# MODEL_DIR holds the exported model_meta.h, model_selftest.h, model_aot.{h,c}. Relative paths
# are taken from the repository root. The port Makefile tracks dependencies; give each
# configuration its own OUT (the defaults do), since flags are not part of them.
QEMU_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
ROOT := $(abspath $(QEMU_DIR)/../../..)
abs = $(if $(filter /%,$(1)),$(1),$(ROOT)/$(1))

MODEL_DIR ?= firmware/lib/model
SELFTEST ?= 0
FORCE_C99 ?= 0
SUFFIX := $(if $(filter 1,$(SELFTEST)),_selftest)$(if $(filter 1,$(FORCE_C99)),_c99)
OUT ?= build/qemu/nano_tflm$(SUFFIX).elf

M := $(call abs,$(MODEL_DIR))
CORE := $(ROOT)/firmware/lib/benchcore
AOT := $(ROOT)/firmware/lib/backend_aot
SRCS := $(CORE)/core.c $(CORE)/protocol.c $(AOT)/backend_aot.c \
	$(filter-out $(AOT)/backend_aot.c,$(wildcard $(AOT)/*.c)) $(M)/model_aot.c
DEFINES := NANO_TFLM_BAREMETAL_MAIN $(if $(filter 1,$(SELFTEST)),NANO_TFLM_SELFTEST_AT_BOOT) \
	$(if $(filter 1,$(FORCE_C99)),NANO_TFLM_FORCE_C99)

.PHONY: all
all:
	@for f in model_meta.h model_selftest.h model_aot.h model_aot.c; do \
	  test -f "$(M)/$$f" || { echo "error: $(M)/$$f missing: export the model first (python -m trainer export)"; exit 2; }; \
	done
	$(MAKE) --no-print-directory -C $(QEMU_DIR) MAIN=$(CORE)/main_baremetal.c \
	  SRCS="$(SRCS)" INCLUDES="$(M) $(AOT)" DEFINES="$(DEFINES)" OUT=$(call abs,$(OUT))
