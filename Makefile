# fox: C core + Lua scripts. `make` builds build/fox; `make test` installs deps, builds, tests.
PREFIX    ?= /usr/local
BUILD     ?= build
CC        ?= cc
PKGS      := lua5.4 libevent libcurl libcrypto sqlite3 libedit
CSTD      := -std=c11 -D_GNU_SOURCE
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
OPT       ?= -O2 -g
SAN       ?=
CFLAGS    += $(CSTD) $(WARN) $(OPT) $(SAN) -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
             -DFOX_VERSION='"$(VERSION)"' -DFOX_SCRIPT_DIR='"$(PREFIX)/share/fox/scripts"'
LDLIBS    += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -ldl
LDFLAGS   += $(SAN) -rdynamic
VERSION   := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

SRCS      := $(wildcard src/*.c)
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CORE_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
CTESTS    := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/test_*.c))

DEBIAN_PKGS := lua5.4 liblua5.4-dev lua-cjson libevent-dev libcurl4-openssl-dev libssl-dev \
               libsqlite3-dev lua-busted lua-check libedit-dev pkg-config curl prometheus \
               clang libclang-rt-14-dev valgrind

.PHONY: all deps test ctest spec lint asan install clean demo bench check

all: $(BUILD)/fox

# Installs the Debian packages fox needs, only when one is missing.
deps:
	@scripts/install-deps.sh $(DEBIAN_PKGS)

$(BUILD)/fox: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c $(wildcard include/fox/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

$(BUILD)/tests/%: tests/c/%.c $(wildcard tests/c/*.h) $(CORE_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests/c $(LDFLAGS) -o $@ $< $(CORE_OBJS) $(LDLIBS)

# Everything: C unit tests, busted specs (run inside the real host), integration tests.
test: deps
	@$(MAKE) --no-print-directory all $(CTESTS)
	@scripts/run-tests.sh $(BUILD)

asan:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all \
	    $(patsubst $(BUILD)/%,build-asan/%,$(CTESTS))
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    FOX_SANITIZED=1 scripts/run-tests.sh build-asan

lint:
	luacheck -q scripts tests/lua

check: all
	$(BUILD)/fox check

demo: deps all
	@scripts/demo.sh $(BUILD)

bench: deps all
	@scripts/install-deps.sh wrk jq
	@bench/run.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/fox
	install -m 755 $(BUILD)/fox $(DESTDIR)$(PREFIX)/bin/fox
	cp -R scripts $(DESTDIR)$(PREFIX)/share/fox/

clean:
	rm -rf build build-asan

# ---- hardening (issue 8): fuzzing and the long soak --------------------------------
# `make fuzz`: builds the libFuzzer targets tests/fuzz/fuzz_*.c with clang (ASan, UBSan,
# libFuzzer) against the core objects built the same way in build/fuzz, then runs each
# for FUZZ_TIME seconds from its corpus tests/fuzz/<target>/ (new inputs go to
# build/fuzz/corpus/<target>/, crashes to build/fuzz/artifacts/).
FUZZ_BUILD   := build/fuzz
FUZZ_TIME    ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	    $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_fox.h $(CORE_OBJS)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(CORE_OBJS) $(LDLIBS)

# The corpus replay of `make test` includes the fuzz targets' sources.
$(BUILD)/tests/test_fuzz_corpus: $(wildcard tests/fuzz/fuzz_*.c tests/fuzz/*.h)

# `make soak`: the long variants (crash storm with 300 incidents and five kill -9, API
# faults at full size, hostile clients at full scale) and a larger valgrind subset.
soak: deps
	@$(MAKE) --no-print-directory all $(CTESTS)
	@FOX_SOAK=1 tests/soak/run.sh $(BUILD)

.PHONY: fuzz soak
