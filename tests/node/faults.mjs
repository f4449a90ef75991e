// The npm openai and @anthropic-ai/sdk SDKs, unmodified, at their default base URLs, against
// replayed recordings with fault rules: what the application sees (text, or the error) and
// how many HTTP requests the SDK made (its retries).
// usage: node faults.mjs openai|anthropic ARGS_JSON   (ARGS: body, timeout, maxRetries)
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [what, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson || "{}");
let requests = 0;
const fetch = (url, init) => { requests++; return globalThis.fetch(url, init); };
const opts = { fetch, maxRetries: args.maxRetries ?? 2, ...(args.timeout ? { timeout: args.timeout } : {}) };
const parts = [];
try {
  if (what === "openai") {
    const client = new OpenAI({ apiKey: "sk-test-not-used", ...opts });
    const stream = await client.chat.completions.create({ ...args.body, stream: true });
    for await (const chunk of stream) parts.push(chunk.choices[0]?.delta?.content ?? "");
  } else {
    const client = new Anthropic({ apiKey: "sk-ant-test-not-used", ...opts });
    const stream = await client.messages.create({ ...args.body, stream: true });
    for await (const ev of stream) if (ev.type === "content_block_delta") parts.push(ev.delta.text ?? "");
  }
  console.log(JSON.stringify({ text: parts.join(""), chunks: parts.length, requests }));
} catch (e) {
  const cause = e.cause ? `${e.cause.code ?? ""} ${e.cause.message ?? ""}`.trim() : null;
  console.log(JSON.stringify({ error: e.constructor.name, message: String(e.message), status: e.status ?? null, cause,
                               chunks: parts.length, requests }));
}
