# zpage - see README.md.  `make` builds the libraries, `make check` runs the
# tests (plain, ASan+UBSan, TSan), `make bench` runs the benchmark.
CC      ?= cc
PREFIX  ?= /usr/local
VERSION := 0.1.0
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
ALLCFLAGS = $(CSTD) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -Iinclude -Isrc -pthread

SRCS := $(wildcard src/*.c)
HDRS := include/zpage.h $(wildcard src/*.h)
TESTS := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))

B := build
OBJS := $(SRCS:src/%.c=$(B)/obj/%.o)

.PHONY: all check check-run bench install clean format
all: $(B)/libzpage.a $(B)/libzpage.so $(B)/libzpage-preload.so $(B)/zpage-run

$(B)/obj/%.o: src/%.c $(HDRS) | $(B)/obj
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(B)/libzpage.a: $(OBJS)
	rm -f $@ && ar rcs $@ $^

# -z nodelete: a dlclose() must not unmap the code of the pthread key
# destructor that gives a thread's cache back when the thread exits.
# -ldl: dlsym() (os.c), in libc itself from glibc 2.34
$(B)/libzpage.so: $(OBJS) zpage.map
	$(CC) -shared -pthread -Wl,-soname,libzpage.so.0 -Wl,-z,nodelete -Wl,--version-script=zpage.map -o $@ $(OBJS) -ldl

# the drop-in: the malloc family over a process-wide arena (preload/preload.c)
$(B)/obj/preload.o: preload/preload.c $(HDRS) | $(B)/obj
	$(CC) $(ALLCFLAGS) -c $< -o $@
$(B)/libzpage-preload.so: $(B)/obj/preload.o $(OBJS) preload/preload.map
	$(CC) -shared -pthread -Wl,--version-script=preload/preload.map -o $@ $(B)/obj/preload.o $(OBJS) -ldl
# the same with a fault injector, for tests/preload.sh only (ZPAGE_TEST_FAIL_MOVES)
$(B)/tests/libzpage-preload-faults.so: preload/preload.c $(HDRS) $(OBJS) preload/preload.map | $(B)/tests
	$(CC) $(ALLCFLAGS) -DZPAGE_PRELOAD_TEST_FAULTS -shared -Wl,--version-script=preload/preload.map -o $@ $< $(OBJS) -ldl
$(B)/zpage-run: preload/zpage-run.in | $(B)/obj
	sed 's|@LIB@|libzpage-preload.so|' $< > $@ && chmod 755 $@

$(B)/obj $(B)/asan/obj $(B)/tsan/obj $(B)/tests:
	mkdir -p $@

# ---- tests: each variant links its own static library; the ASan+UBSan one
# also checks the lock rules (ZPAGE_LOCKDEP, src/lock.h); both sanitizer
# builds count the inline clears for the tests (ZPAGE_DEBUG_COUNTS) ----
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -DZPAGE_LOCKDEP \
	-DZPAGE_DEBUG_COUNTS
TSAN_FLAGS := -O1 -g -fsanitize=thread -DZPAGE_DEBUG_COUNTS
TCFLAGS = $(CSTD) $(WARN) -Iinclude -Isrc -Itests -pthread

$(B)/asan/obj/%.o: src/%.c $(HDRS) | $(B)/asan/obj
	$(CC) $(TCFLAGS) $(ASAN_FLAGS) -c $< -o $@
$(B)/tsan/obj/%.o: src/%.c $(HDRS) | $(B)/tsan/obj
	$(CC) $(TCFLAGS) $(TSAN_FLAGS) -c $< -o $@
$(B)/asan/libzpage.a: $(SRCS:src/%.c=$(B)/asan/obj/%.o)
	rm -f $@ && ar rcs $@ $^
$(B)/tsan/libzpage.a: $(SRCS:src/%.c=$(B)/tsan/obj/%.o)
	rm -f $@ && ar rcs $@ $^

$(B)/tests/%: tests/%.c tests/test.h $(HDRS) $(B)/libzpage.a | $(B)/tests
	$(CC) $(TCFLAGS) -O2 -g $< $(B)/libzpage.a -o $@ -ldl
$(B)/tests/%.asan: tests/%.c tests/test.h $(HDRS) $(B)/asan/libzpage.a | $(B)/tests
	$(CC) $(TCFLAGS) $(ASAN_FLAGS) $< $(B)/asan/libzpage.a -o $@ -ldl
$(B)/tests/%.tsan: tests/%.c tests/test.h $(HDRS) $(B)/tsan/libzpage.a | $(B)/tests
	$(CC) $(TCFLAGS) $(TSAN_FLAGS) $< $(B)/tsan/libzpage.a -o $@ -ldl

# Tests that start threads also run under ThreadSanitizer; but test_lockdep,
# whose thread only provokes an abort in a child and whose checks exist in
# the ASan build alone (ZPAGE_LOCKDEP).
TSAN_TESTS := $(filter-out test_lockdep,$(patsubst tests/%.c,%,$(shell grep -l 'pthread_create' tests/test_*.c 2>/dev/null)))

TEST_BINS := $(TESTS:%=$(B)/tests/%) $(TESTS:%=$(B)/tests/%.asan) $(TSAN_TESTS:%=$(B)/tests/%.tsan)

# The example, built against an installed copy through pkg-config, run
# against the shared library: proves `make install` and the README example.
STAGE := $(abspath $(B)/stage)
$(B)/tests/example_basic: examples/basic.c all zpage.pc.in | $(B)/tests
	$(MAKE) --no-print-directory install PREFIX=$(STAGE) >/dev/null
	$(CC) $(CSTD) $(WARN) examples/basic.c -o $@ \
		$$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --cflags --libs zpage) -Wl,-rpath,$(STAGE)/lib

# A program that knows nothing of zpage, for the drop-in's test (tests/preload.sh)
$(B)/tests/preload_prog: tests/preload_prog.c | $(B)/tests
	$(CC) $(CSTD) $(WARN) -O2 -g -pthread $< -o $@

# What the tests need (numpy, pytest and hypothesis for the drop-in's test,
# the sanitizer runtimes) is installed first when missing (needs root;
# otherwise a test that needs it is skipped and says why), not the peers
# (scripts/deps.sh test); before the test binaries, which link the
# sanitizer runtimes (check-run builds and runs them).  `all` comes first,
# in this make, so that `make -j2 all check` does not build it twice
check: all
	@bash scripts/deps.sh test || echo "make check: could not install every test dependency; the tests that need one say so"
	@$(MAKE) --no-print-directory check-run
check-run: all $(TEST_BINS) $(B)/tests/example_basic $(B)/zpage-bench $(B)/tests/preload_prog $(B)/tests/libzpage-preload-faults.so
	@sh tests/run.sh $(TEST_BINS) $(B)/tests/example_basic tests/bench_smoke.sh tests/abi.sh tests/preload.sh

# test_os opens the shared library (dlclose_with_a_live_thread)
$(B)/tests/test_os $(B)/tests/test_os.asan $(B)/tests/test_os.tsan: $(B)/libzpage.so

# ---- benchmark ----
# zpage's version and commit, for the environment zpage-bench prints: the
# commit of the tree the binary was built from ("-dirty" with uncommitted
# changes, "unknown" outside a git checkout).  $(B)/commit.h is rewritten
# whenever that changes, so a commit (or a checkout) rebuilds the bench and
# its stamp cannot go stale.
$(B)/commit.h: FORCE
	@mkdir -p $(B); \
	line="#define ZPAGE_COMMIT \"$$([ -e .git ] && git describe --always --dirty 2>/dev/null || echo unknown)\""; \
	[ -f $@ ] && [ "$$(cat $@)" = "$$line" ] || echo "$$line" >$@
FORCE:
.PHONY: FORCE

BENCH_SRCS := $(wildcard bench/*.c)
$(B)/zpage-bench: $(BENCH_SRCS) $(wildcard bench/*.h) $(HDRS) $(B)/libzpage.a $(B)/commit.h
	$(CC) $(CSTD) $(WARN) $(CFLAGS) -Iinclude -Isrc -Ibench -pthread -DZPAGE_VERSION='"$(VERSION)"' \
		-include $(B)/commit.h $(BENCH_SRCS) $(B)/libzpage.a -o $@ -lm -ldl

# `make bench` runs the default suite; BENCH_ARGS="all --plot bench-out" for everything
# The peers are installed first when missing (needs root; otherwise their
# rows say "not installed" and the rest run).
bench: $(B)/zpage-bench
	@bash scripts/deps.sh || echo "make bench: could not install every peer; their rows will say so"
	$(B)/zpage-bench $(BENCH_ARGS)

# ---- install ----
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/zpage.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(B)/libzpage.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libzpage.so $(DESTDIR)$(PREFIX)/lib/libzpage.so.$(VERSION)
	ln -sf libzpage.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libzpage.so.0
	ln -sf libzpage.so.0 $(DESTDIR)$(PREFIX)/lib/libzpage.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' zpage.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/zpage.pc
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/libzpage-preload.so $(DESTDIR)$(PREFIX)/lib/
	sed 's|@LIB@|$(abspath $(PREFIX))/lib/libzpage-preload.so|' preload/zpage-run.in > $(DESTDIR)$(PREFIX)/bin/zpage-run
	chmod 755 $(DESTDIR)$(PREFIX)/bin/zpage-run

format:
	clang-format -i include/*.h src/*.[ch] tests/*.[ch] bench/*.c preload/*.c

clean:
	rm -rf $(B)
