#!/bin/sh
# Install what building and testing llmreplay needs: Debian packages, and the npm packages the
# Node tests drive (tests/node). Quiet and fast when everything is already there.
set -e
cd "$(dirname "$0")/.."
PKGS="build-essential golang-go libcurl4-openssl-dev libssl-dev libcjson-dev libcjson1 libnghttp2-dev libnghttp2-14 uthash-dev curl strace
python3 python3-requests python3-httpx python3-h2 python3-aiohttp python3-pycurl util-linux openssl nghttp2-client
php-cli php-curl php-guzzlehttp-guzzle ruby wget default-jdk-headless
python3-pytest man-db clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node may come from another repository (with its own npm): only install Debian's when absent.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "llmreplay: installing missing packages:$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The npm clients of the test suite, pinned in tests/node/package-lock.json.
if [ ! -d tests/node/node_modules/openai ] || [ ! -d tests/node/node_modules/ollama ] ||
   [ ! -d tests/node/node_modules/@google/genai ] || [ ! -d tests/node/node_modules/@anthropic-ai/sdk ]; then
    echo "llmreplay: installing the Node test clients (npm ci in tests/node)"
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
