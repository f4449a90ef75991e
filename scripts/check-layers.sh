#!/bin/sh
# The layer rules of shim/ (README, "Design"), checked on the sources and the built objects:
#  1. a file includes only from its own layer or from a layer below it; the hook layers (sock,
#     tls, curl) are peers and never include one another;
#  2. only the hook files (shim/{sock,tls,curl}/hook_*.c) define exported symbols;
#  3. no object refers to a symbol the library interposes, hook files included (the shim
#     never calls its own hooks: it goes through the table of real functions).
# usage: scripts/check-layers.sh [BUILD_DIR]   (exit 1 and one line per violation)
set -u
cd "$(dirname "$0")/.."
B=${1:-build}
S=${LR_SHIM_DIR:-shim} # the source tree (a test points it at a copy)
rank() {
    case "$1" in
    base) echo 0 ;; json) echo 1 ;; engine) echo 2 ;; net) echo 3 ;;
    sock | tls | curl) echo 4 ;; cli) echo 5 ;; *) echo -1 ;;
    esac
}
bad=0
T=$(mktemp -d) # scratch files: concurrent runs never share them
trap 'rm -rf "$T"' EXIT
say() { echo "check-layers: $*"; bad=1; }

for f in "$S"/*/*.c "$S"/*/*.h; do
    layer=$(basename "$(dirname "$f")")
    r=$(rank "$layer")
    [ "$r" -ge 0 ] || { say "$f: $layer is not a layer (base json engine net sock tls curl cli)"; continue; }
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
        n=${line%%:*}
        inc=$(echo "$line" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
        il=${inc%%/*}
        [ "$il" != "$inc" ] || { echo "check-layers: $f:$n: include \"$inc\" names no layer (write \"LAYER/$inc\")"; echo x >&3; continue; }
        [ -f "$S/$inc" ] || { echo "check-layers: $f:$n: \"$inc\" does not exist"; echo x >&3; continue; }
        ir=$(rank "$il")
        if [ "$ir" -gt "$r" ] || { [ "$ir" -eq "$r" ] && [ "$il" != "$layer" ]; }; then
            echo "check-layers: $f:$n: $layer/ includes \"$inc\" from $il/, a layer above or beside it"
            echo x >&3
        fi
    done 3>>"$T/bad"
done
if [ -s "$T/bad" ]; then bad=1; fi

lib="$B/libllmreplay.so"
if [ -f "$lib" ]; then
    hooked=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TtWiV]/ {print $3}' | sed 's/@.*//' | sort -u)
    for o in $(find "$B/obj" -name '*.o' | sort); do
        rel=${o#"$B"/obj/}
        case "$rel" in
        cli/*) continue ;;
        sock/hook_* | tls/hook_* | curl/hook_*)
            # a hook file may define the interposed symbols but never refer to one (a call of
            # another hook, or of itself, instead of the real function)
            refs=$(readelf -rW "$o" | awk '{print $5}' | sed 's/[-+@].*//' | sort -u | comm -12 - "$(printf '%s\n' "$hooked" > "$T/hooked"; echo "$T/hooked")")
            [ -z "$refs" ] || say "$rel refers to the interposed $(echo $refs) (call the real function, base/real.h)"
            continue ;;
        esac
        exported=$(readelf -Ws "$o" | awk '$5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" {print $8}')
        [ -z "$exported" ] || say "$rel exports $(echo $exported) (exported symbols belong in hook files)"
        calls=$(nm -u "$o" | awk '{print $2}' | sed 's/@.*//' | sort -u | comm -12 - "$(printf '%s\n' "$hooked" > "$T/hooked"; echo "$T/hooked")")
        [ -z "$calls" ] || say "$rel calls the interposed $(echo $calls) (use the real-function table, base/real.h)"
    done
else
    say "$lib is not built (make all first)"
fi
[ "$bad" -eq 0 ] && echo "check-layers: ok"
exit "$bad"
