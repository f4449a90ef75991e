# llmreplay: build, demo, test. `make demo` and `make test` install missing Debian packages first.
CC      ?= cc
VERSION := 0.1.0
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
BASE    := -std=gnu11 -D_GNU_SOURCE -DLR_VERSION=\"$(VERSION)\" -fPIC -fvisibility=hidden -pthread $(WARN)
LDLIBS  := -ldl -pthread

B := build
# shim/ has one folder per layer; a file includes only from its own layer or those below
# (scripts/check-layers.sh): base < json < engine < net < sock, tls, curl (the hooks) < cli.
LAYERS  := base json engine net sock tls curl cli
src_of   = $(wildcard $(1:%=shim/%/*.c))
CORE_SRC := $(call src_of,base json engine) shim/net/http.c
LIB_SRC  := $(call src_of,base json engine net sock tls curl)
# The CLI holds the responder too (net/): `serve`, and `run`'s proxy for Go and static programs.
CLI_SRC  := $(sort $(CORE_SRC) $(call src_of,net cli)) shim/tls/cert.c
LIB_OBJ  := $(LIB_SRC:shim/%.c=$(B)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:shim/%.c=$(B)/obj/%.o)
CORE_OBJ := $(CORE_SRC:shim/%.c=$(B)/obj/%.o)
HEADERS  := $(wildcard $(LAYERS:%=shim/%/*.h))
BASE     += -Ishim

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_OBJ  := $(LIB_SRC:shim/%.c=$(B)/asan/%.o)
CORE_SAN := $(CORE_SRC:shim/%.c=$(B)/asan/%.o)

.PHONY: all deps demo test test-fast asan bench clean check-layers install uninstall fuzz fuzz-build tsan
all: $(B)/libllmreplay.so $(B)/llmreplay

$(B)/obj/%.o: shim/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(BASE) $(CFLAGS) -c $< -o $@
$(B)/asan/%.o: shim/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(BASE) -O1 -g $(SAN) -c $< -o $@

# Only the hooks are exported (-fvisibility=hidden); no libcurl/libcjson link: both are found
# at run time, so a process that never calls an LLM loads neither.
$(B)/libllmreplay.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-z,defs -Wl,--no-undefined $(LIB_OBJ) -o $@ $(LDLIBS)
$(B)/llmreplay: $(CLI_OBJ)
	$(CC) $(CLI_OBJ) -o $@ -lssl -lcrypto $(LDLIBS)
$(B)/asan/libllmreplay.so: $(SAN_OBJ)
	$(CC) -shared $(SAN) $(SAN_OBJ) -o $@ $(LDLIBS)

# Test programs and unit tests.
$(B)/tests/%: tests/c/%.c $(HEADERS) $(CORE_OBJ) | $(B)/tests
	$(CC) $(BASE) $(CFLAGS) $< -o $@ $(if $(filter unit_%,$*),$(CORE_OBJ)) -lcurl -lssl -lcrypto $(LDLIBS)
$(B)/tests/asan_%: tests/c/%.c $(HEADERS) $(SAN_OBJ) | $(B)/tests
	$(CC) $(BASE) -O1 -g $(SAN) $< -o $@ $(if $(filter unit_%,$*),$(CORE_SAN)) -lcurl -lssl -lcrypto $(LDLIBS)
$(B)/tests:
	mkdir -p $@

TEST_BINS := $(patsubst tests/c/%.c,$(B)/tests/%,$(wildcard tests/c/*.c))
ASAN_BINS := $(patsubst tests/c/%.c,$(B)/tests/asan_%,$(wildcard tests/c/*.c))

# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang against the shim's objects compiled
# with the same sanitizers; the hook files are left out (they would interpose the fuzzer's own
# calls). Sanitizer runtimes refuse RTLD_DEEPBIND: -DLR_NO_DEEPBIND (a build flag, not a
# setting). `make fuzz` runs each target for FUZZ_S seconds from seeds made from ../shared.
FUZZ_CC  ?= clang
FUZZ_S   ?= 60
FZ       := $(B)/fuzz
FZ_FLAGS := -Wno-string-plus-int -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -DLR_NO_DEEPBIND
FZ_SRC   := $(call src_of,base json engine net)
FZ_OBJ   := $(FZ_SRC:shim/%.c=$(FZ)/obj/%.o)
FZ_BINS  := $(patsubst tests/fuzz/%.c,$(FZ)/%,$(wildcard tests/fuzz/fuzz_*.c))
$(FZ)/obj/%.o: shim/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(BASE) $(FZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FZ_OBJ)
	$(FUZZ_CC) $(BASE) $(FZ_FLAGS) -fsanitize=fuzzer $< $(FZ_OBJ) -o $@ $(LDLIBS)
fuzz-build: $(FZ_BINS)
fuzz: deps
	@$(MAKE) --no-print-directory -s fuzz-build
	@FUZZ_S=$(FUZZ_S) scripts/fuzz.sh

# ThreadSanitizer: the library, the CLI and the C test programs in build/tsan/ (gcc's libtsan;
# a program that is not built with it preloads libtsan.so.2 before the library).
TS       := $(B)/tsan
TS_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread -DLR_NO_DEEPBIND
TS_OBJ   := $(LIB_SRC:shim/%.c=$(TS)/obj/%.o)
TS_CLI   := $(CLI_SRC:shim/%.c=$(TS)/obj/%.o)
TS_CORE  := $(CORE_SRC:shim/%.c=$(TS)/obj/%.o)
TS_BINS  := $(patsubst tests/c/%.c,$(TS)/tests/%,$(wildcard tests/c/*.c))
$(TS)/obj/%.o: shim/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(BASE) $(TS_FLAGS) -c $< -o $@
$(TS)/libllmreplay.so: $(TS_OBJ)
	$(CC) -shared -fsanitize=thread $(TS_OBJ) -o $@ $(LDLIBS)
$(TS)/llmreplay: $(TS_CLI)
	$(CC) -fsanitize=thread $(TS_CLI) -o $@ -lssl -lcrypto $(LDLIBS)
$(TS)/tests/%: tests/c/%.c $(HEADERS) $(TS_CORE)
	@mkdir -p $(@D)
	$(CC) $(BASE) $(TS_FLAGS) $< -o $@ $(if $(filter unit_%,$*),$(TS_CORE)) -lcurl -lssl -lcrypto $(LDLIBS)
tsan: $(TS)/libllmreplay.so $(TS)/llmreplay $(TS_BINS)

deps:
	@scripts/install-deps.sh

demo: deps
	@$(MAKE) --no-print-directory -s all $(B)/tests/stream_chat
	@scripts/demo.sh

test: deps
	@$(MAKE) --no-print-directory -s all asan $(TEST_BINS) fuzz-build tsan
	@scripts/check-layers.sh $(B)
	@/usr/bin/python3 tests/run.py

asan: $(B)/asan/libllmreplay.so $(ASAN_BINS)

bench: deps
	@$(MAKE) --no-print-directory -s all $(TEST_BINS)
	@scripts/bench.sh

# Fails when a file includes from a layer above its own, or an object outside the hook files
# refers to a symbol the library interposes.
check-layers: all
	@scripts/check-layers.sh $(B)

# make install [PREFIX=/usr/local] [DESTDIR=]: the installed llmreplay finds its library in
# ../lib/llmreplay/, and the library finds the binary in ../../bin/ (for TLS it terminates).
PREFIX  ?= /usr/local
INST    := $(DESTDIR)$(PREFIX)
install: all
	install -d $(INST)/bin $(INST)/lib/llmreplay $(INST)/share/man/man1 $(INST)/share/bash-completion/completions
	install -m 755 $(B)/llmreplay $(INST)/bin/llmreplay
	install -m 755 $(B)/libllmreplay.so $(INST)/lib/llmreplay/libllmreplay.so
	install -m 644 doc/llmreplay.1 $(INST)/share/man/man1/llmreplay.1
	install -m 644 doc/llmreplay.bash $(INST)/share/bash-completion/completions/llmreplay
uninstall:
	rm -f $(INST)/bin/llmreplay $(INST)/lib/llmreplay/libllmreplay.so $(INST)/share/man/man1/llmreplay.1 \
	      $(INST)/share/bash-completion/completions/llmreplay
	-rmdir $(INST)/lib/llmreplay 2>/dev/null

clean:
	rm -rf $(B)
