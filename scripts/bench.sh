#!/usr/bin/env bash
# llmreplay benchmark: what the shim costs a process that never calls an LLM, how long the lazy
# index build takes, what one replayed request costs through libcurl compared with a real
# HTTP server on 127.0.0.1, and what the persistent index costs and saves with 1, 20,000 and
# 100,000 recordings. Run from the repository root after `make all`:
#
#   scripts/bench.sh
#
# The machine is shared and small: every number is a median of repeated, interleaved runs and
# only ratios measured in the same run are compared with goals. A missed goal is reported, not
# an error; the exit status is non-zero only when something does not work.
#
# Uses hyperfine and nginx when installed (Debian packages `hyperfine`, `nginx`); without them
# a Python timing loop and the Python server alone are used. Knobs (environment):
#   LLMREPLAY_SHARED   folder with seed/ and corpus/   (default: ../shared beside the repo)
#   BENCH_TRUE_RUNS=300 BENCH_PY_RUNS=100              runs per mode for section 1
#   BENCH_INDEX_N=20000 BENCH_INDEX_REPS=5             generated set size, runs per set
#   BENCH_SHIM_REQS=10000 BENCH_NGINX_REQS=10000 BENCH_PYSRV_REQS=2000 BENCH_ROUNDS=5
#   BENCH_PI_BIG_N=100000 BENCH_PI_BUILD_REPS=3        section 4: largest (compact) set, builds per set
#   BENCH_PI_ROUNDS=10 BENCH_PI_HIT_RUNS=200 BENCH_PI_MISS_RUNS=20   section 4: rounds, runs per case
#   BENCH_NO_HYPERFINE=1 BENCH_NO_NGINX=1              use the fallbacks even when installed
#   BENCH_SOCK_N=3000   section 5: requests per client run
#   BENCH_TLS_N=2000 BENCH_TLS_ROUNDS=5   section 6: requests per client run, interleaved rounds
#   BENCH_TLS_CALLGRIND=0                 section 6: skip the instruction counts (about a minute)
#   BENCH_PROXY_N=2000 BENCH_PROXY_ROUNDS=5   section 7: requests per Go client run, interleaved rounds
#   BENCH_PIN_CPU=0     sections 3 and 7 run client and servers on this one CPU (taskset); empty: unpinned
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3
HELPER=$ROOT/scripts/bench_helper.py
SHIM=$ROOT/build/libllmreplay.so
SHARED=${LLMREPLAY_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
[ -d "$SHARED/seed" ] || SHARED=/work/shared
SEED_DIR=$SHARED/seed
CORPUS=$SHARED/corpus
URL=http://localhost:8000/v1/chat/completions

TRUE_RUNS=${BENCH_TRUE_RUNS:-300}
PY_RUNS=${BENCH_PY_RUNS:-100}
INDEX_N=${BENCH_INDEX_N:-20000}
INDEX_REPS=${BENCH_INDEX_REPS:-5}
SHIM_REQS=${BENCH_SHIM_REQS:-10000}
NGINX_REQS=${BENCH_NGINX_REQS:-10000}
PYSRV_REQS=${BENCH_PYSRV_REQS:-2000}
ROUNDS=${BENCH_ROUNDS:-5}
PI_BIG_N=${BENCH_PI_BIG_N:-100000}
PI_BUILD_REPS=${BENCH_PI_BUILD_REPS:-3}
PI_ROUNDS=${BENCH_PI_ROUNDS:-10}
PI_HIT_RUNS=${BENCH_PI_HIT_RUNS:-200}
PI_MISS_RUNS=${BENCH_PI_MISS_RUNS:-20}
# BENCH_NO_HYPERFINE=1 / BENCH_NO_NGINX=1 force the fallbacks, as on a machine without them.
HAVE_HYPERFINE=0
[ -z "${BENCH_NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null && HAVE_HYPERFINE=1
NGINX=""
[ -z "${BENCH_NO_NGINX:-}" ] && NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
# Section 3 pins the client and the servers to one CPU: on this VM a request/response ping-pong
# between two CPUs costs 2-5x more than on one, and the unpinned scheduler flips between both
# placements from run to run (nginx measured 40 us one run, 90 us the next). One CPU is the
# server's best case, so the server/shim ratios are conservative.
PIN=()
PIN_CPU=${BENCH_PIN_CPU-0}
[ -n "$PIN_CPU" ] && command -v taskset >/dev/null && PIN=(taskset -c "$PIN_CPU")
SERVER_MAX_S=900 # no server started here outlives this, even if this script is killed hard

die() { echo "bench: $*" >&2; exit 1; }
[ -f "$SHIM" ] || die "$SHIM is missing: run 'make all' first"
[ -x "$PY" ] || die "$PY is missing"
if [ ! -d "$SEED_DIR" ] || [ ! -d "$CORPUS" ]; then die "no seed/ and corpus/ under $SHARED (set LLMREPLAY_SHARED)"; fi
SEED=$(find "$SEED_DIR" -maxdepth 1 -name '*.json' | sort | head -n1)
[ -n "$SEED" ] || die "no *.json recording in $SEED_DIR"

# ---- set-up and clean-up ----------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/llmreplay-bench.XXXXXX")
chmod 755 "$TMP" # nginx may read files here as another user
PIDS=()   # servers, stopped at exit
FGPID=""  # the long step running now (see step), stopped at exit too
cleanup() {
    # Only PIDs that are still this shell's jobs: an exited, reaped child's PID may be reused.
    local pid live
    live=" $(jobs -p | tr '\n' ' ') "
    for pid in $FGPID "${PIDS[@]}"; do
        if [[ $live == *" $pid "* ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    for pid in $FGPID "${PIDS[@]}"; do
        if [[ $live == *" $pid "* ]]; then wait "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Run a long step in the background and wait for it: bash runs a trap only once a foreground
# command has finished (and ignores a Ctrl-C that the command survived, as `timeout` does: it
# has a process group of its own), but interrupts `wait` at once.
step() {
    "$@" &
    FGPID=$!
    local rc=0
    wait "$FGPID" || rc=$?
    FGPID=""
    return "$rc"
}

# Measure a private copy: a `make` running meanwhile cannot swap the library mid-benchmark.
cp "$SHIM" "$TMP/libllmreplay.so"
SHIM_BUILT=$SHIM
SHIM=$TMP/libllmreplay.so
export BENCH_SHIM=$SHIM BENCH_CORPUS=$CORPUS BENCH_URL=$URL
# Where the shim keeps its persistent index (if it has one): never the user's ~/.cache here.
export LLMREPLAY_CACHE_DIR=$TMP/cache XDG_CACHE_HOME=$TMP/xdg-cache
export BENCH_BODY=$TMP/body.json BENCH_CLIENT=$ROOT/build/bench/bench_curl
"$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["request"]["body"]))' "$SEED" >"$BENCH_BODY"

mkdir -p build/bench
cc -O2 -Wall -Wextra -o build/bench/bench_curl scripts/bench_curl.c -lcurl -pthread
EMPTY_SO=$ROOT/build/bench/empty_preload.so # the control: what preloading any library costs
echo 'int llmreplay_bench_empty;' | cc -shared -fPIC -O2 -x c -o "$EMPTY_SO" -
export BENCH_EMPTY=$EMPTY_SO

section() { printf '\n== %s\n' "$*"; }
T0=$(date +%s)
echo "llmreplay benchmark  $(date -u '+%Y-%m-%d %H:%M:%S UTC')  $(nproc) cores  $(uname -r)"
echo "shim: $SHIM_BUILT ($(stat -c %s "$SHIM") bytes, built $(date -u -r "$SHIM_BUILT" '+%H:%M:%S UTC'))" \
    " commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- shim 2>/dev/null || echo ' + uncommitted shim/ changes')"
echo "seed: $SEED"
echo "corpus: $CORPUS ($(find "$CORPUS" -name '*.json' | wc -l) files)"

# ---- 1. cost for a process that never calls an LLM ---------------------------------------------
section "1. start-up cost of a process that never calls an LLM (LLMREPLAY_DIR=corpus)"
# Three modes: no preload, an empty shared object preloaded (what LD_PRELOAD of anything costs:
# open, mmap, relocation), and the shim preloaded. LLMREPLAY_DIR is the corpus in both preload
# modes. Runs are interleaved: the order of the modes is rotated every round (or every run).
startup_cost() { # NAME RUNS CMD...
    local name=$1 runs=$2
    shift 2
    if [ "$HAVE_HYPERFINE" = 1 ]; then
        # hyperfine has no per-command environment: each round runs one hyperfine per mode,
        # whose children inherit (or not) LD_PRELOAD. Many short rounds: on a shared machine
        # long blocks of one mode pick up drift (10 rounds of 5 python runs once read 1.10
        # where 20 rounds of 10 read 1.00).
        local rounds=20 per i j mode modes=(without empty with)
        per=$(((runs + rounds - 1) / rounds))
        for ((i = 0; i < rounds; i++)); do
            for ((j = 0; j < 3; j++)); do
                mode=${modes[$(((i + j) % 3))]}
                local pre=() out=$TMP/hf.$name.$mode.$i.json
                case $mode in
                without) pre=(env -u LD_PRELOAD -u LLMREPLAY_DIR) ;;
                empty) pre=(env LD_PRELOAD="$EMPTY_SO" LLMREPLAY_DIR="$CORPUS") ;;
                with) pre=(env LD_PRELOAD="$SHIM" LLMREPLAY_DIR="$CORPUS") ;;
                esac
                "${pre[@]}" hyperfine -N --style none --warmup 2 --runs "$per" --export-json "$out" -- "$*" \
                    >/dev/null 2>"$TMP/hf.err" || { cat "$TMP/hf.err" >&2; die "hyperfine failed"; }
            done
        done
        "$PY" "$HELPER" hfmerge "$TMP/startup_$name.json" "$TMP"/hf."$name".*.json
    else
        BENCH_RUNS=$runs step "$PY" "$HELPER" startup "$TMP/startup_$name.json" "$@"
    fi
    "$PY" "$HELPER" startup-report "$TMP/startup_$name.json" "$*"
}
[ "$HAVE_HYPERFINE" = 1 ] || echo "  (hyperfine not installed or BENCH_NO_HYPERFINE set: Python posix_spawn timing loop)"
startup_cost true "$TRUE_RUNS" /bin/true
startup_cost python "$PY_RUNS" "$PY" -c pass
# Lazy index: with the debug log on, a process that makes no LLM call must not print the
# "indexed N recordings" line.
lazy_err=$(env LD_PRELOAD="$SHIM" LLMREPLAY_DIR="$CORPUS" LLMREPLAY_LOG=debug "$PY" -c pass 2>&1 || true)
if grep -q "indexed" <<<"$lazy_err"; then
    echo "  !! the index was built although no LLM call was made: $lazy_err"
else
    echo "  LLMREPLAY_LOG=debug python3 -c pass with the shim: no 'indexed' line (the index is lazy)"
fi

# ---- 2. index build on the first intercepted request --------------------------------------------
section "2. index build: one replayed request (bench_curl, 1 request) per process"
GEN=$TMP/gen$INDEX_N
t=${EPOCHREALTIME/[.,]/}
step "$PY" "$HELPER" gen "$SEED" "$GEN" "$INDEX_N"
t=$(((${EPOCHREALTIME/[.,]/} - t) / 1000))
echo "  generated $(find "$GEN" -name '*.json' | wc -l) recordings ($(du -sh "$GEN" | cut -f1)," \
    "$(find "$GEN" -mindepth 1 -type d | wc -l) subdirectories) in $t ms"
echo "  (the seed request is not in the corpus: set (b) is corpus:seed so the request is a hit)"
step "$PY" "$HELPER" index "$TMP/index.json" "$INDEX_REPS" \
    "seed=$SEED_DIR" "corpus+seed=$CORPUS:$SEED_DIR" "generated-$INDEX_N=$GEN"
LLMREPLAY_CACHE_DIR=$TMP/cache-gen step "$PY" "$HELPER" index-cache "$TMP/index_cache.json" 3 "generated-$INDEX_N" "$GEN"
lazy_err=$(env LD_PRELOAD="$SHIM" LLMREPLAY_DIR="$GEN" LLMREPLAY_LOG=debug /bin/true 2>&1 || true)
grep -q indexed <<<"$lazy_err" && echo "  !! /bin/true built the $INDEX_N-recording index: $lazy_err" ||
    echo "  /bin/true with LLMREPLAY_DIR=generated-$INDEX_N and LLMREPLAY_LOG=debug: no 'indexed' line"
# $GEN is kept for section 4, which deletes it

# ---- 3. per-request cost through libcurl --------------------------------------------------------
section "3. per-request cost: the seed request through curl_easy_perform on one reused handle"
RESP=$TMP/resp.sse
env LD_PRELOAD="$SHIM" LLMREPLAY_DIR="$SEED_DIR" curl -sS --fail -o "$RESP" "$URL" \
    -H 'content-type: application/json' --data-binary "@$BENCH_BODY" || die "replaying the seed with curl failed"
echo "  shim's rendered answer: $(wc -c <"$RESP") bytes of SSE, served as-is by the servers below"

check_server() { # URL: the server answers the seed request with exactly the shim's bytes
    curl -sS --fail -o "$TMP/check.sse" "$1" -H 'content-type: application/json' --data-binary "@$BENCH_BODY" &&
        cmp -s "$TMP/check.sse" "$RESP"
}
wait_ready() { # URL PID: poll until the server answers, or its process died, or 10 s passed
    local i
    for ((i = 0; i < 200; i++)); do
        check_server "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

NGINX_URL=""
if [ -n "$NGINX" ]; then
    mkdir -p "$TMP/nginx"
    chmod 755 "$TMP/nginx"
    chmod 644 "$RESP"
    for _ in 1 2 3; do # a port picked free may be taken before nginx binds it: retry
        port=$("$PY" "$HELPER" freeport)
        cat >"$TMP/nginx/nginx.conf" <<EOF
# one process, in the foreground, on loopback only; POST to the path returns the file
daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$port;
        location = /v1/chat/completions {
            default_type "text/event-stream; charset=utf-8";
            alias $RESP;
            error_page 405 =200 \$uri; # the static module refuses POST: serve the file anyway
        }
    }
}
EOF
        timeout -k 5 "$SERVER_MAX_S" "${PIN[@]}" "$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" 2>>"$TMP/nginx/stderr" &
        npid=$!
        PIDS+=("$npid")
        if wait_ready "http://127.0.0.1:$port/v1/chat/completions" "$npid"; then
            NGINX_URL=http://127.0.0.1:$port/v1/chat/completions
            echo "  nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') serving it on 127.0.0.1:$port (keep-alive)"
            break
        fi
        kill "$npid" 2>/dev/null || true
        wait "$npid" 2>/dev/null || true
        PIDS=("${PIDS[@]:0:${#PIDS[@]}-1}")
    done
    [ -n "$NGINX_URL" ] || { cat "$TMP/nginx/stderr" "$TMP/nginx/error.log" 2>/dev/null >&2; echo "  !! nginx did not start: skipped"; }
else
    echo "  nginx not installed: only the Python server baseline (apt-get install nginx for the other)"
fi

timeout -k 5 "$SERVER_MAX_S" "${PIN[@]}" "$PY" "$HELPER" serve "$TMP/pyport" "$RESP" "$SERVER_MAX_S" 2>"$TMP/pysrv.err" &
PYPID=$!
PIDS+=("$PYPID")
for ((i = 0; i < 200; i++)); do [ -s "$TMP/pyport" ] && break; sleep 0.05; done
[ -s "$TMP/pyport" ] || { cat "$TMP/pysrv.err" >&2; die "the Python server did not start"; }
PY_URL=http://127.0.0.1:$(cat "$TMP/pyport")/v1/chat/completions
wait_ready "$PY_URL" "$PYPID" || die "the Python server does not answer with the shim's bytes"
echo "  python http.server (ThreadingHTTPServer, HTTP/1.1, Content-Length) on ${PY_URL#http://}"

run_client() { # NAME N WARMUP [shim]: one bench_curl run, its result line appended to NAME.log
    local name=$1 n=$2 warm=$3 url
    case $name in shim) url=$URL ;; nginx) url=$NGINX_URL ;; python) url=$PY_URL ;; esac
    local pre=(env -u LD_PRELOAD)
    [ "$name" = shim ] && pre=(env LD_PRELOAD="$SHIM" LLMREPLAY_DIR="$SEED_DIR")
    step "${pre[@]}" timeout 300 "${PIN[@]}" "$BENCH_CLIENT" "$url" "$BENCH_BODY" "$n" "$warm" >>"$TMP/$name.log" ||
        die "bench_curl against $name failed"
}
names=(shim)
[ -n "$NGINX_URL" ] && names+=(nginx)
names+=(python)
echo "  $ROUNDS rounds, order rotated each round: shim x$SHIM_REQS$([ -n "$NGINX_URL" ] && echo ", nginx x$NGINX_REQS")," \
    "python server x$PYSRV_REQS (after 100, 100, 50 untimed warm-up requests)"
if [ ${#PIN[@]} -gt 0 ]; then
    echo "  client and servers pinned to CPU $PIN_CPU (BENCH_PIN_CPU=): the servers' best case, see the comment at the top"
else
    echo "  not pinned to a CPU: server numbers vary with where the scheduler puts client and server"
fi
for ((r = 0; r < ROUNDS; r++)); do
    k=$((r % ${#names[@]}))
    for ((j = 0; j < ${#names[@]}; j++)); do
        name=${names[$(((j + k) % ${#names[@]}))]}
        case $name in
        shim) run_client shim "$SHIM_REQS" 100 ;;
        nginx) run_client nginx "$NGINX_REQS" 100 ;;
        python) run_client python "$PYSRV_REQS" 50 ;;
        esac
    done
done
args=()
for name in "${names[@]}"; do args+=("$name=$TMP/$name.log"); done
"$PY" "$HELPER" perreq "$TMP/perreq.json" "${args[@]}"

# ---- 4. persistent index --------------------------------------------------------------------------
section "4. persistent index: one curl CLI process per request, index already built"
# One `curl -s -o /dev/null URL -d @BODY` per process, with a warm index in a cache directory of
# its own: does a request cost the same with 20,000 recordings as with 1? What do the build, the
# file, a miss cost, and how do they grow from 20,000 to 100,000 recordings? Sets:
#   seed (1)          the seed directory, one recording
#   generated-N       section 2's set: the seed re-indented, ~19 KB a file, 100 per subdirectory
#   compact-1/N/BIG_N the seed with its answer cut to 3 chunks, unindented (~2 KB a file), 100 per
#                     subdirectory: 100,000 full-size copies would be ~2 GB
# Requests: the seed request (recording #0 of every set), "question MID" (a recording in the
# middle of the large sets), and one no set has (a miss).
PI_CACHE=$TMP/cache-pindex
BODY_MID=$TMP/body-mid.json
BODY_MISS=$TMP/body-miss.json
MID=$((INDEX_N * 5 / 8 + 1))
"$PY" "$HELPER" body "$SEED" "$BODY_MID" "question $MID"
"$PY" "$HELPER" body "$SEED" "$BODY_MISS" "a question that no recording has"
CMP=$TMP/compact
mkdir -p "$CMP"
avail_kb() { df -Pk "$TMP" | awk 'NR == 2 { print $4 }'; }
need_kb() { echo $(($1 * 6 + 512 * 1024)); } # ~2 KB file in a 4 KiB block, index, margin
cmp_sets=()
if [ "$(avail_kb)" -ge "$(need_kb "$INDEX_N")" ]; then
    cmp_sets+=(1 "$INDEX_N")
    # the big set is generated after the small ones, so the check sees their space taken
else
    echo "  !! only $(($(avail_kb) / 1024)) MiB free under $TMP: the compact sets are skipped"
fi
for n in "${cmp_sets[@]}"; do
    t=${EPOCHREALTIME/[.,]/}
    step "$PY" "$HELPER" gen "$SEED" "$CMP/$n" "$n" compact
    [ "$n" = 1 ] || echo "  generated compact-$n: $(find "$CMP/$n" -name '*.json' | wc -l) recordings ($(du -sh "$CMP/$n" | cut -f1)," \
        "$(find "$CMP/$n" -mindepth 1 -type d | wc -l) subdirectories) in $(((${EPOCHREALTIME/[.,]/} - t) / 1000)) ms"
done
if [ ${#cmp_sets[@]} -gt 0 ]; then
    if [ "$PI_BIG_N" -gt "$INDEX_N" ] && [ "$(avail_kb)" -ge "$(need_kb "$PI_BIG_N")" ]; then
        t=${EPOCHREALTIME/[.,]/}
        step "$PY" "$HELPER" gen "$SEED" "$CMP/$PI_BIG_N" "$PI_BIG_N" compact
        echo "  generated compact-$PI_BIG_N: $(find "$CMP/$PI_BIG_N" -name '*.json' | wc -l) recordings" \
            "($(du -sh "$CMP/$PI_BIG_N" | cut -f1), $(find "$CMP/$PI_BIG_N" -mindepth 1 -type d | wc -l) subdirectories)" \
            "in $(((${EPOCHREALTIME/[.,]/} - t) / 1000)) ms"
        cmp_sets+=("$PI_BIG_N")
    elif [ "$PI_BIG_N" -gt "$INDEX_N" ]; then
        echo "  !! SKIPPED compact-$PI_BIG_N: $(($(avail_kb) / 1024)) MiB free under $TMP, it needs" \
            "$(($(need_kb "$PI_BIG_N") / 1024)) MiB (set TMPDIR to a larger disk)"
    fi
fi
build_sets=("seed=$SEED_DIR" "generated-$INDEX_N=$GEN")
for n in "${cmp_sets[@]}"; do build_sets+=("compact-$n=$CMP/$n"); done
LLMREPLAY_CACHE_DIR=$PI_CACHE step "$PY" "$HELPER" coldbuild "$TMP/pindex_build.json" "$PI_BUILD_REPS" \
    "$ROOT/build/llmreplay" "${build_sets[@]}"

# The cases: NAME LABEL DIR REQUEST BODY RUNS hit|miss BASE, tab-separated.
: >"$TMP/pindex_cases.tsv"
add_case() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TMP/pindex_cases.tsv"; }
add_sets() { # SHAPE-1-NAME DIR1 NAME=DIR...: the cases of one shape of recordings
    local one=$1 dir1=$2 s n d
    shift 2
    add_case "$one/hit" "$one" "$dir1" "seed" "$BENCH_BODY" "$PI_HIT_RUNS" hit -
    for s in "$@"; do
        n=${s%%=*} d=${s#*=}
        add_case "$n/hit" "$n" "$d" "seed (#0)" "$BENCH_BODY" "$PI_HIT_RUNS" hit "$one/hit"
        add_case "$n/mid" "$n" "$d" "question $MID" "$BODY_MID" "$PI_HIT_RUNS" hit "$one/hit"
    done
    add_case "$one/miss" "$one" "$dir1" "(no recording)" "$BODY_MISS" "$PI_MISS_RUNS" miss -
    for s in "$@"; do
        n=${s%%=*} d=${s#*=}
        add_case "$n/miss" "$n" "$d" "(no recording)" "$BODY_MISS" "$PI_MISS_RUNS" miss "$one/miss"
    done
}
add_sets seed "$SEED_DIR" "generated-$INDEX_N=$GEN"
if [ ${#cmp_sets[@]} -gt 0 ]; then
    big=()
    for n in "${cmp_sets[@]:1}"; do big+=("compact-$n=$CMP/$n"); done
    add_sets compact-1 "$CMP/1" "${big[@]}"
fi
LLMREPLAY_CACHE_DIR=$PI_CACHE BENCH_CURL=$(command -v curl) BENCH_HYPERFINE=$HAVE_HYPERFINE \
    step "$PY" "$HELPER" warm "$TMP/pindex_warm.json" "$PI_ROUNDS" "$TMP/pindex_cases.tsv"
if [ ${#cmp_sets[@]} -gt 2 ]; then "$PY" "$HELPER" growth "$TMP" "compact-$INDEX_N" "compact-$PI_BIG_N"; fi
t=${EPOCHREALTIME/[.,]/}
rm -rf "$GEN"
t2=${EPOCHREALTIME/[.,]/}
rm -rf "$CMP"
echo "  generated sets deleted: generated-$INDEX_N in $(((t2 - t) / 1000)) ms, the compact ones in" \
    "$(((${EPOCHREALTIME/[.,]/} - t2) / 1000)) ms"

# ---- 5. socket layer -------------------------------------------------------------------------------
section "5. socket layer: one Python keep-alive client, shim vs. a local Python HTTP server vs. nginx"
"$PY" "$ROOT/scripts/bench_sockets.py" "$SHIM" "$SEED" "${BENCH_SOCK_N:-3000}" | tee "$TMP/sockets.txt" | grep -v '^RATIO'

section "6. TLS layer: HTTPS vs. plain-HTTP replay, Python (hooked libssl) and Node (terminated TLS)"
"$PY" "$ROOT/scripts/bench_tls.py" "$SHIM" "$ROOT/build/llmreplay" "$SEED" "${BENCH_TLS_N:-2000}" | tee "$TMP/tls.txt" | grep -v '^RATIO'

section "7. proxy/serve path: one Go keep-alive client, llmreplay serve (base URL, HTTPS proxy) vs. nginx"
if command -v go >/dev/null; then
    "$PY" "$ROOT/scripts/bench_proxy.py" "$ROOT/build/llmreplay" "$SEED" "${BENCH_PROXY_N:-2000}" "${BENCH_PROXY_ROUNDS:-5}" |
        tee "$TMP/proxy.txt" | grep -v '^RATIO'
else
    echo "  go not installed (apt-get install golang-go): skipped" | tee "$TMP/proxy.txt"
fi

# ---- summary --------------------------------------------------------------------------------------
section "summary (ratios of medians measured in this run; total $(($(date +%s) - T0)) s)"
"$PY" "$HELPER" summary "$TMP"
sed -n 's/^RATIO \(.*\) = \(.*\)/  socket layer, per request: \1 = \2 (goal for nginx: > 1, the shim faster)/p' "$TMP/sockets.txt"
sed -n 's/^RATIO \(.*\) = \(.*\)/  TLS layer, per request: \1 = \2/p' "$TMP/tls.txt"
sed -n 's/^RATIO \(.*\) = \(.*\)/  proxy\/serve path, per request (Go client): \1 = \2/p' "$TMP/proxy.txt"
