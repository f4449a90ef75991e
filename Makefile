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

.PHONY: all deps demo test test-fast asan bench clean check-layers install uninstall
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

deps:
	@scripts/install-deps.sh

demo: deps
	@$(MAKE) --no-print-directory -s all $(B)/tests/stream_chat
	@scripts/demo.sh

test: deps
	@$(MAKE) --no-print-directory -s all asan $(TEST_BINS)
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
