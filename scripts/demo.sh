#!/bin/sh
# `make demo`: replay the example recording through the curl CLI and through a small C libcurl
# program, with events spaced 80 ms apart so the stream is visible as it arrives.
set -e
cd "$(dirname "$0")/.."
B=build
REQ=examples/requests/hello-stream.json
URL=https://api.openai.com/v1/chat/completions

echo "== recordings in examples/recordings:"
$B/llmreplay ls examples/recordings
echo
echo "== curl CLI, streaming (no network is used; the answer comes from the recording):"
$B/llmreplay run -d examples/recordings --pace 80 -- \
    curl -sN "$URL" -H "Content-Type: application/json" -H "Authorization: Bearer sk-not-needed" --data-binary @"$REQ" |
    awk -F'"content":"' '/^data: \{/ && NF > 1 { split($2, a, "\""); printf "%s", a[1]; fflush() } END { print "" }'
echo
echo "== C libcurl program (tests/c/stream_chat.c), streaming:"
$B/llmreplay run -d examples/recordings --pace 80 -- $B/tests/stream_chat "$URL" "$REQ"
echo
echo "== a request with no recording gets an explanation, not the network:"
$B/llmreplay run -d examples/recordings -- \
    curl -s "$URL" -H "Content-Type: application/json" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say goodbye"}],"stream":true}' 2>/dev/null |
    cut -c1-200
echo "..."
