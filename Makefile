# SPDX-License-Identifier: BSD-3-Clause
# The front door. Everything real happens in CMake and scripts/.
PREFIX ?= /usr/local
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build deps demo test test-quick bench bench-report fuzz install clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRCACHE_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Runs the demo on memory:// unless REDIS_URL is set.
demo: build
	@scripts/demo.sh $(BUILD)

# Installs what is missing, builds (normal and ASan+UBSan), starts throwaway servers on
# loopback, runs every test, stops the servers.
test: deps
	@scripts/test.sh

# Unit + contract tests on memory:// and none:// only (no servers), normal build.
test-quick: build
	@cd $(BUILD) && ctest --output-on-failure -LE "integration|faults"

bench: build
	@scripts/bench.sh $(BUILD)

bench-report:
	@scripts/bench_report.sh

fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-asan build-tsan build-fuzz
