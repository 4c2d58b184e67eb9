# shardkv — build, run, test, bench.
#   make run    install missing Debian packages, build, start a node on :8000
#   make test   install missing Debian packages, build, run every test suite
#   make bench  throughput/latency against nginx on this machine
VERSION  := 0.1.0
CC       ?= cc
PKGS     := libuv jansson libxxhash libcrypto
PYTHON   := /usr/bin/python3
FUZZ_SECONDS ?= 30

WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wvla -Wformat=2 \
            -Wstrict-prototypes -Wmissing-prototypes -Wno-format-nonliteral
BASEFLAGS = -std=c11 -D_GNU_SOURCE -DSKV_VERSION=\"$(VERSION)\" $(WARN) -g -pthread \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
OPTFLAGS := -O2
SANFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

SRC      := $(wildcard src/*.c)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)

# Static files served by the node (src/assets.h), compiled in at build time.
WEB_FILES := $(shell find web -type f 2>/dev/null | LC_ALL=C sort)

OBJ       := $(SRC:src/%.c=build/obj/%.o) build/obj/assets_data.o
LIB_OBJ   := $(LIB_SRC:src/%.c=build/obj/%.o) build/obj/assets_data.o
SAN_OBJ   := $(SRC:src/%.c=build/san/obj/%.o) build/san/obj/assets_data.o
SAN_LIB   := $(LIB_SRC:src/%.c=build/san/obj/%.o) build/san/obj/assets_data.o
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=build/tests/%)
SAN_UNIT  := $(UNIT_SRC:tests/unit/%.c=build/san/tests/%)

.PHONY: FORCE all san run test test-ui ui-if-possible check unit unit-san integration integration-san fuzz bench soak clean deps

all: build/shardkv

# V=1 shows the full compiler command lines.
Q := $(if $(V),,@)

build/obj/%.o: src/%.c $(wildcard src/*.h) | build/obj
	@echo "  CC      $<"
	$(Q)$(CC) $(BASEFLAGS) $(OPTFLAGS) -c $< -o $@
build/san/obj/%.o: src/%.c $(wildcard src/*.h) | build/san/obj
	@echo "  CC-SAN  $<"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -c $< -o $@

build/tools/embed: tools/embed.c | build/tools
	@echo "  CC      $<"
	$(Q)$(CC) -std=c11 -O2 -Wall -Wextra -Werror $< -o $@
# The file list is a prerequisite too, so removing a file from web/ rebuilds.
build/gen/assets.list: FORCE | build/gen
	@echo "$(WEB_FILES)" | cmp -s - $@ || echo "$(WEB_FILES)" > $@
build/gen/assets_data.c: build/tools/embed build/gen/assets.list $(WEB_FILES) | build/gen
	@echo "  EMBED   web/ ($(words $(WEB_FILES)) files)"
	$(Q)build/tools/embed $@ web $(WEB_FILES)
build/obj/assets_data.o: build/gen/assets_data.c src/assets.h | build/obj
	@echo "  CC      $<"
	$(Q)$(CC) $(BASEFLAGS) $(OPTFLAGS) -Isrc -c $< -o $@
build/san/obj/assets_data.o: build/gen/assets_data.c src/assets.h | build/san/obj
	@echo "  CC-SAN  $<"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -Isrc -c $< -o $@

build/shardkv: $(OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(BASEFLAGS) $(OPTFLAGS) $^ -o $@ $(LIBS)
build/san/shardkv: $(SAN_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) $^ -o $@ $(LIBS)
san: build/san/shardkv

build/tests/%: tests/unit/%.c $(LIB_OBJ) $(wildcard tests/unit/*.h) | build/tests
	@echo "  TEST    $@"
	$(Q)$(CC) $(BASEFLAGS) $(OPTFLAGS) -Isrc $< $(LIB_OBJ) -o $@ $(LIBS) -lcmocka
build/san/tests/%: tests/unit/%.c $(SAN_LIB) $(wildcard tests/unit/*.h) | build/san/tests
	@echo "  TEST    $@"
	$(Q)$(CC) $(BASEFLAGS) $(SANFLAGS) -Isrc $< $(SAN_LIB) -o $@ $(LIBS) -lcmocka

build/obj build/san/obj build/tests build/san/tests build/fuzz build/tools build/gen:
	mkdir -p $@

deps:
	@scripts/install-deps build

run:
	@scripts/install-deps build
	@$(MAKE) --no-print-directory all
	mkdir -p data
	./build/shardkv --port 8000 --metrics-port 8001 --data-dir ./data

# `make test` = install what is missing, then every suite, then the same
# suites under AddressSanitizer + UndefinedBehaviorSanitizer, then the fuzzer.
test:
	@scripts/install-deps test
	@scripts/install-deps ui || echo "make test: chromium is not installable here; the dashboard test will be skipped"
	@$(MAKE) --no-print-directory check

check: unit integration unit-san integration-san fuzz ui-if-possible
	@echo "make test: all suites passed"

# The dashboard in Debian's chromium, driven by playwright-core from npm
# (tests/ui/run; no browser download).  `make test` runs it when chromium
# and Node.js >= 20 are there, and says so when it skips it.
test-ui: build/shardkv
	tests/ui/run
ui-if-possible: build/shardkv
	@if [ -x /usr/bin/chromium ] && command -v node >/dev/null && \
	   node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then \
	  tests/ui/run; \
	else echo "test-ui: SKIPPED (needs /usr/bin/chromium and Node.js >= 20)"; fi

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

unit-san: $(SAN_UNIT)
	@set -e; for t in $(SAN_UNIT); do echo "== $$t (asan+ubsan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

integration: build/shardkv
	SHARDKV_BIN=$(CURDIR)/build/shardkv $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

integration-san: build/san/shardkv
	SHARDKV_BIN=$(CURDIR)/build/san/shardkv SHARDKV_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,build/fuzz/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))
# Each target runs FUZZ_SECONDS on its corpus (tests/fuzz/corpus/<name>, plus
# what earlier runs found in build/fuzz/corpus_<name>), with the libFuzzer
# dictionary tests/fuzz/<name>.dict when there is one.
# Fuzz targets link only the modules they exercise: FUZZ_SRC_<name> when
# set, else FUZZ_SRC.  counter.c needs the API and the store, so its target
# links every module but main.c, and the embedded web/ files they serve
# (the fuzzer calls only its pure functions).
FUZZ_SRC         := src/http.c src/buf.c src/mem.c src/err.c src/wal.c src/crc32c.c src/io.c src/log.c
FUZZ_SRC_cursor  := src/cursor.c src/crc32c.c src/buf.c src/mem.c src/err.c
FUZZ_SRC_schema  := src/schema.c src/buf.c src/mem.c src/err.c
FUZZ_SRC_client  := src/client.c src/http.c src/buf.c src/mem.c src/err.c
FUZZ_SRC_counter := $(LIB_SRC) build/gen/assets_data.c
fuzz_src = $(or $(FUZZ_SRC_$(1)),$(FUZZ_SRC))
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -DSKV_VERSION=\"$(VERSION)\" -g -O1 -pthread \
              -fsanitize=fuzzer,address,undefined $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -Isrc
.SECONDEXPANSION:
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(call fuzz_src,$$*) $(wildcard src/*.h) | build/fuzz
	clang $(FUZZ_CFLAGS) $< $(call fuzz_src,$*) -o $@ $(LIBS)

fuzz: $(FUZZ_TARGETS)
	@set -e; for f in $(FUZZ_TARGETS); do name=$${f##*/fuzz_}; \
	  mkdir -p build/fuzz/corpus_$$name; \
	  echo "== $$f for $(FUZZ_SECONDS)s"; \
	  dict=; [ ! -f tests/fuzz/$$name.dict ] || dict=-dict=tests/fuzz/$$name.dict; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict build/fuzz/corpus_$$name tests/fuzz/corpus/$$name 2>build/fuzz/$$name.log \
	    || { tail -50 build/fuzz/$$name.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units" build/fuzz/$$name.log; done

# The crash test for longer: kill -9 / restart cycles (SOAK_CYCLES, default 200).
SOAK_CYCLES ?= 200
soak: build/shardkv
	@scripts/install-deps test
	SHARDKV_BIN=$(CURDIR)/build/shardkv SHARDKV_CRASH_CYCLES=$(SOAK_CYCLES) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration/test_crash.py

bench:
	@scripts/install-deps bench
	@$(MAKE) --no-print-directory all
	bench/run

clean:
	rm -rf build
