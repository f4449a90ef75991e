#!/bin/sh
# `make demo`: replay the example recording through the curl CLI, a small C libcurl program,
# Python requests and the npm openai SDK over HTTPS, with events spaced 80 ms apart so the
# stream is visible as it arrives.
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
echo "== Python requests over HTTPS, certificate checks on (the TLS layer hooks Python's libssl):"
$B/llmreplay run -d examples/recordings --pace 80 -- /usr/bin/python3 -c '
import json, requests
body = json.load(open("'"$REQ"'"))
with requests.post("'"$URL"'", json=body, stream=True, headers={"Authorization": "Bearer sk-not-needed"}) as r:
    for line in r.iter_lines():
        if line.startswith(b"data: {"):
            print(json.loads(line[6:])["choices"][0]["delta"].get("content") or "", end="", flush=True)
print()'
echo
echo "== the npm openai SDK, default base URL https://api.openai.com/v1 (TLS terminated by llmreplay):"
REQ_BODY=$(cat "$REQ")
# from tests/node, where `make deps` installed the pinned openai package
(cd tests/node && ../../$B/llmreplay run -d ../../examples/recordings --pace 80 -- node --input-type=module -e '
import OpenAI from "openai";
const client = new OpenAI({ apiKey: "sk-not-needed" });
const stream = await client.chat.completions.create({ ...JSON.parse(process.argv[1]), stream: true });
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
console.log();' "$REQ_BODY")
echo
echo "== a request with no recording gets an explanation, not the network:"
$B/llmreplay run -d examples/recordings -- \
    curl -s "$URL" -H "Content-Type: application/json" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say goodbye"}],"stream":true}' 2>/dev/null |
    cut -c1-200
echo "..."
