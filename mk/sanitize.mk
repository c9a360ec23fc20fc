# Sanitizers, valgrind and fuzzing of libhammer (included by the Makefile). Each run starts its own throwaway
# redis-server on loopback through tests/run_with_redis.py (or uses HAMMER_URL when set).
#   make asan-stress       the library built with -sanitize=address (+ LeakSanitizer), tests/sanitize/stress.c on it
#   make tsan-stress       the same with -sanitize=thread
#   make valgrind          valgrind --leak-check=full on build/bin/example and the stress program (release library)
#   make fuzz              libFuzzer on tests/fuzz (FUZZ_SECONDS, default 20) with the seed corpus tests/fuzz/corpus
#   make sanitize          all of the above
# STRESS_SECONDS (default 3) bounds each stress run. The Swift builds use their own scratch folders (.build-asan,
# .build-tsan, .build-fuzz), so they never disturb .build or each other.

SAN          := $(B)/sanitize
# The toolchain's clang, so the C side links the very sanitizer runtimes swiftc uses.
SWIFT_TOOLBIN := $(dir $(realpath $(shell command -v $(SWIFT) 2>/dev/null)))
SAN_CC       ?= $(SWIFT_TOOLBIN)clang
SWIFT_RTLIB  := $(realpath $(SWIFT_TOOLBIN)../lib/swift/linux)
STRESS_SECONDS ?= 3
FUZZ_SECONDS ?= 20
VALGRIND     ?= valgrind
SAN_CFLAGS   := -O1 -g -fno-omit-frame-pointer $(WARN) -Iinclude -fuse-ld=lld
# The release link flags (Makefile: SWIFT_RELEASE), in a debug build.
SAN_LINK     := -Xswiftc -use-ld=lld -Xlinker --version-script=$(CURDIR)/hammer.map -Xlinker -soname=$(SONAME)

# ASan: exactly the release flags, static Swift runtime included. TSan: the Swift runtime stays dynamic. With
# -static-stdlib, the runtime's swift_once (swift::threading_impl::once_slow), which guards every lazy global, is
# linked into libhammer.so uninstrumented, and TSan reports each first use of a global (Scripts.countHit,
# Keys.indexSuffix, ...) as a race with its initialisation. The dynamic libswiftCore.so is seen through TSan's
# interceptors and is clean, so no suppression is needed (tests/sanitize/tsan.supp says why it is empty).
ASAN_SWIFT   := $(SWIFT) build -c debug --product hammer --scratch-path .build-asan -Xswiftc -sanitize=address \
                -Xswiftc -static-stdlib $(SAN_LINK)
TSAN_SWIFT   := $(SWIFT) build -c debug --product hammer --scratch-path .build-tsan -Xswiftc -sanitize=thread $(SAN_LINK)
# libFuzzer: a release build (-O keeps Swift's overflow and bounds traps; it runs about 30x faster than debug).
FUZZ_SWIFT   := $(SWIFT) build -c release --package-path tests/fuzz --scratch-path .build-fuzz \
                -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -use-ld=lld
FUZZ_BIN     := .build-fuzz/release/fuzz-hammer
FUZZ_SOURCES := $(SOURCES) $(wildcard tests/fuzz/Package.swift tests/fuzz/Sources/FuzzHammer/*.swift tests/fuzz/Sources/FuzzMain/*.c tests/fuzz/Sources/FuzzMain/include/*.h)

# Set for the sanitizer runs only (not exported to the rest of the Makefile).
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1 \
            LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize/lsan.supp:print_suppressions=0
TSAN_ENV := TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/sanitize/tsan.supp

.PHONY: sanitize sanitize-build asan-lib tsan-lib asan-stress tsan-stress valgrind fuzz fuzz-build

sanitize: asan-stress tsan-stress valgrind fuzz
sanitize-build: $(SAN)/asan/stress $(SAN)/tsan/stress $(SAN)/stress $(FUZZ_BIN) $(B)/bin/example

asan-lib: $(SAN)/asan/lib/$(SONAME)
tsan-lib: $(SAN)/tsan/lib/$(SONAME)

$(SAN)/asan/lib/$(SONAME): $(SOURCES) mk/sanitize.mk
	$(ASAN_SWIFT)
	mkdir -p $(@D)
	cp .build-asan/debug/libhammer.so $@.tmp && mv -f $@.tmp $@
	ln -sf $(SONAME) $(@D)/libhammer.so

$(SAN)/tsan/lib/$(SONAME): $(SOURCES) mk/sanitize.mk
	$(TSAN_SWIFT)
	mkdir -p $(@D)
	cp .build-tsan/debug/libhammer.so $@.tmp && mv -f $@.tmp $@
	ln -sf $(SONAME) $(@D)/libhammer.so

$(SAN)/asan/stress: tests/sanitize/stress.c include/hammer.h $(SAN)/asan/lib/$(SONAME)
	$(SAN_CC) $(SAN_CFLAGS) -fsanitize=address -o $@ $< -L$(SAN)/asan/lib -lhammer \
	    -Wl,-rpath,$(CURDIR)/$(SAN)/asan/lib -lpthread

# The toolchain's TSan runtime carries libdispatch interceptors: it needs libdispatch and the blocks runtime.
$(SAN)/tsan/stress: tests/sanitize/stress.c include/hammer.h $(SAN)/tsan/lib/$(SONAME)
	$(SAN_CC) $(SAN_CFLAGS) -fsanitize=thread -o $@ $< -L$(SAN)/tsan/lib -lhammer \
	    -Wl,-rpath,$(CURDIR)/$(SAN)/tsan/lib -L$(SWIFT_RTLIB) -ldispatch -lBlocksRuntime -Wl,-rpath,$(SWIFT_RTLIB) -lpthread

# The same program on the normal release library, for valgrind.
$(SAN)/stress: tests/sanitize/stress.c include/hammer.h $(LIB)
	mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -Iinclude -o $@ $< -L$(B)/lib -lhammer -Wl,-rpath,$(CURDIR)/$(B)/lib -lpthread

asan-stress: $(SAN)/asan/stress
	$(ASAN_ENV) $(PYTHON) tests/run_with_redis.py sh -c 'exec $(SAN)/asan/stress "$$HAMMER_URL" $(STRESS_SECONDS)'

tsan-stress: $(SAN)/tsan/stress
	$(TSAN_ENV) $(PYTHON) tests/run_with_redis.py sh -c 'exec $(SAN)/tsan/stress "$$HAMMER_URL" $(STRESS_SECONDS)'

# Definite leaks and memory errors fail the run (exit 9). The Swift runtime's metadata caches, which live for the
# process, show as "possibly lost" (interior pointers) and are not counted.
VALGRIND_RUN := $(VALGRIND) -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9
valgrind: $(B)/bin/example $(SAN)/stress
	$(PYTHON) tests/run_with_redis.py $(VALGRIND_RUN) $(B)/bin/example
	$(PYTHON) tests/run_with_redis.py sh -c 'exec $(VALGRIND_RUN) $(SAN)/stress "$$HAMMER_URL" $(STRESS_SECONDS)'

fuzz-build: $(FUZZ_BIN)
$(FUZZ_BIN): $(FUZZ_SOURCES) mk/sanitize.mk
	$(FUZZ_SWIFT)
	touch $@

# New inputs go to a scratch folder (the first corpus folder), never into the seed corpus; a crash leaves its input
# in $(SAN)/fuzz/crash-*. SWIFT_BACKTRACE=enable=no lets libFuzzer report a Swift trap itself, at once.
fuzz: $(FUZZ_BIN)
	rm -rf $(SAN)/fuzz/new && mkdir -p $(SAN)/fuzz/new
	SWIFT_BACKTRACE=enable=no $(ASAN_ENV) $(PYTHON) tests/run_with_redis.py sh -c 'HAMMER_FUZZ_URL="$$HAMMER_URL&timeout_ms=10000&prefix=fuzz:" \
	    exec $(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
	    -artifact_prefix=$(SAN)/fuzz/ -print_final_stats=1 $(SAN)/fuzz/new tests/fuzz/corpus'
