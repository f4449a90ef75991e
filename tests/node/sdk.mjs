// The npm openai and ollama SDKs, unmodified, against replayed recordings.
// usage: node sdk.mjs openai-stream|openai-chat|openai-error|ollama-generate-stream|ollama-chat ARGS_JSON
import OpenAI from "openai";
import { Ollama } from "ollama";

const [what, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson || "{}");
const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");

if (what.startsWith("openai")) {
  const client = new OpenAI({ apiKey: "sk-test-not-used", baseURL: args.baseURL, maxRetries: 2 });
  if (what === "openai-stream") {
    const t0 = performance.now();
    const stream = await client.chat.completions.create({ ...args.body, stream: true });
    const times = [], parts = [];
    for await (const chunk of stream) { times.push(performance.now() - t0); parts.push(chunk.choices[0]?.delta?.content ?? ""); }
    print({ text: parts.join(""), chunks: parts.length, first_ms: times[0], last_ms: times.at(-1) });
  } else if (what === "openai-chat") {
    const r = await client.chat.completions.create(args.body);
    print({ text: r.choices[0].message.content, id: r.id });
  } else if (what === "openai-error") {
    try { await client.chat.completions.create(args.body); print({ error: null }); }
    catch (e) { print({ status: e.status, message: e.message, name: e.constructor.name }); }
  }
} else {
  const ollama = new Ollama({ host: args.host });
  if (what === "ollama-generate-stream") {
    const parts = [];
    for await (const part of await ollama.generate({ ...args.body, stream: true })) parts.push(part.response);
    print({ text: parts.join(""), chunks: parts.length });
  } else if (what === "ollama-chat") {
    const r = await ollama.chat(args.body);
    print({ text: r.message.content });
  }
}
