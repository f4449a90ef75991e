# llmreplay: build, demo, test. `make demo` and `make test` install missing Debian packages first.
CC      ?= cc
VERSION := 0.1.0
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
BASE    := -std=gnu11 -D_GNU_SOURCE -DLR_VERSION=\"$(VERSION)\" -fPIC -fvisibility=hidden -pthread $(WARN)
LDLIBS  := -ldl -pthread

B := build
ENGINE := util log cjson_rt jspan canon ops recording render index store match engine real http sha256 pyjson record
HOOKS  := curl_rt fdtable dest responder hook_curl hook_socket hook_dns hook_tls tls_term cert
LIB_OBJ := $(ENGINE:%=$(B)/obj/%.o) $(HOOKS:%=$(B)/obj/%.o)
CLI_OBJ := $(ENGINE:%=$(B)/obj/%.o) $(B)/obj/cli.o $(B)/obj/cert.o $(B)/obj/cert_linked.o $(B)/obj/tlsd.o
HEADERS := $(wildcard shim/*.h)

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_OBJ := $(ENGINE:%=$(B)/asan/%.o) $(HOOKS:%=$(B)/asan/%.o)

.PHONY: all deps demo test test-fast asan bench clean
all: $(B)/libllmreplay.so $(B)/llmreplay

$(B)/obj/%.o: shim/%.c $(HEADERS) | $(B)/obj
	$(CC) $(BASE) $(CFLAGS) -c $< -o $@
$(B)/asan/%.o: shim/%.c $(HEADERS) | $(B)/asan
	$(CC) $(BASE) -O1 -g $(SAN) -c $< -o $@
$(B)/obj $(B)/asan:
	mkdir -p $@

# Only the hooks are exported (-fvisibility=hidden); no libcurl/libcjson link: both are found
# at run time, so a process that never calls an LLM loads neither.
$(B)/libllmreplay.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-z,defs -Wl,--no-undefined $(LIB_OBJ) -o $@ $(LDLIBS)
$(B)/llmreplay: $(CLI_OBJ)
	$(CC) $(CLI_OBJ) -o $@ -lssl -lcrypto $(LDLIBS)
$(B)/asan/libllmreplay.so: $(SAN_OBJ)
	$(CC) -shared $(SAN) $(SAN_OBJ) -o $@ $(LDLIBS)

# Test programs and unit tests.
$(B)/tests/%: tests/c/%.c $(HEADERS) $(ENGINE:%=$(B)/obj/%.o) | $(B)/tests
	$(CC) $(BASE) $(CFLAGS) -Ishim $< -o $@ $(if $(filter unit_%,$*),$(ENGINE:%=$(B)/obj/%.o)) -lcurl -lssl -lcrypto $(LDLIBS)
$(B)/tests/asan_%: tests/c/%.c $(HEADERS) $(SAN_OBJ) | $(B)/tests
	$(CC) $(BASE) -O1 -g $(SAN) -Ishim $< -o $@ $(if $(filter unit_%,$*),$(ENGINE:%=$(B)/asan/%.o)) -lcurl -lssl -lcrypto $(LDLIBS)
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
	@/usr/bin/python3 tests/run.py

asan: $(B)/asan/libllmreplay.so $(ASAN_BINS)

bench: deps
	@$(MAKE) --no-print-directory -s all $(TEST_BINS)
	@scripts/bench.sh

clean:
	rm -rf $(B)
