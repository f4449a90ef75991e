#!/bin/sh
# Run every libFuzzer target of tests/fuzz for FUZZ_S seconds (default 60), one after the other:
# seeds made from ../shared (tests/fuzz/seeds.py), the regression inputs of tests/fuzz/regress,
# and a growing corpus in build/fuzz/corpus. A crash leaves build/fuzz/artifacts/NAME-crash-*;
# copy it to tests/fuzz/regress/NAME/ once understood. FUZZ_TARGETS="http jspan" picks some.
# Prints one line per target: executions, and "ok" or what it found. Exits 1 on any finding.
set -u
cd "$(dirname "$0")/.."
S=${FUZZ_S:-60}
F=build/fuzz
mkdir -p $F/artifacts $F/corpus
rm -rf $F/seeds && /usr/bin/python3 tests/fuzz/seeds.py $F/seeds || exit 1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
targets=${FUZZ_TARGETS:-$(ls $F | sed -n 's/^fuzz_//p')}
fail=0
for t in $targets; do
    mkdir -p $F/corpus/$t tests/fuzz/regress/$t
    log=$F/$t.log
    $F/fuzz_$t -max_total_time="$S" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix=$F/artifacts/$t- $F/corpus/$t $F/seeds/$t tests/fuzz/regress/$t >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ $rc -eq 0 ]; then
        echo "fuzz_$t: ${execs:-?} executions in ${S} s, ok"
    else
        fail=1
        what=$(grep -m1 -E 'ERROR: |runtime error|SUMMARY|Timeout|out-of-memory|abort' "$log")
        echo "fuzz_$t: FOUND after ${execs:-?} executions: $what (log $log, input $(ls -t $F/artifacts/$t-* 2>/dev/null | head -1))"
    fi
done
exit $fail
