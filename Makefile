# SPDX-License-Identifier: BSD-3-Clause
# The front door. Everything real happens in CMake and scripts/.
# `make`, `make build`, `make install` and `make package` only build (no package installs, no
# -Werror: a newer compiler's new warning must not break a release build). `make demo`,
# `make test`, `make bench` and `make fuzz` first install what they need (scripts/deps.sh);
# `make test` builds with -Werror.
PREFIX ?= /usr/local
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
WERROR ?= OFF
CMAKE_FLAGS ?=

.PHONY: all build deps demo test test-quick bench bench-report fuzz install package clean

all: build

deps:
	@scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRCACHE_WERROR=$(WERROR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Runs the demo on memory:// unless REDIS_URL is set.
demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh $(BUILD)

# Installs what is missing, builds (normal and ASan+UBSan, both -Werror), starts throwaway
# servers on loopback, runs every test, stops the servers.
test: deps
	@scripts/test.sh

# Unit + contract tests on memory:// and none:// only (no servers), normal build, -Werror.
test-quick:
	@$(MAKE) --no-print-directory build WERROR=ON
	@cd $(BUILD) && ctest --output-on-failure -LE "integration|faults"

bench: deps
	@$(MAKE) --no-print-directory build
	@scripts/bench.sh $(BUILD)

bench-report:
	@scripts/bench_report.sh

fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

# Debian packages (CPack) in $(BUILD)/packages/: the library, -dev and the CLI.
# Debian packages, from a build directory of their own configured as a distribution's is:
# prefix /usr, so that GNUInstallDirs puts the libraries, rcache.pc and the CMake package in
# the multiarch directory (lib/<triplet>); no tests, no bench. They land in $(BUILD)/packages.
PKG_BUILD ?= $(BUILD)-package
package:
	@cmake -S . -B $(PKG_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	  -DRCACHE_BUILD_TESTS=OFF -DRCACHE_BUILD_BENCH=OFF -DRCACHE_WERROR=$(WERROR) $(CMAKE_FLAGS) \
	  $(if $(PACKAGE_CONTACT),"-DRCACHE_PACKAGE_CONTACT=$(PACKAGE_CONTACT)") >/dev/null
	@cmake --build $(PKG_BUILD) -j $(JOBS)
	@cd $(PKG_BUILD) && cpack -G DEB -B $(abspath $(BUILD))/packages >/dev/null && ls $(abspath $(BUILD))/packages/*.deb

clean:
	rm -rf build build-asan build-tsan build-fuzz build-package
