// The npm @google/genai SDK, unmodified, at its default endpoints, against replayed recordings.
// usage: node gemini.mjs ARGS_JSON; ARGS_JSON = {mode: "gemini"|"vertex"|"express", calls: [
//   {op: "stream"|"generate"|"embed"|"count"|"list", model, contents, config}]}
// Prints one JSON line per call: {text, chunks} / {values} / {totalTokens} / {status, message}.
import { GoogleGenAI } from "@google/genai";

const args = JSON.parse(process.argv[2] || "{}");
const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const opts = args.mode === "vertex" ? { vertexai: true, project: args.project || "llmreplay-test", location: args.location || "us-central1" }
  : args.mode === "express" ? { vertexai: true, apiKey: args.apiKey || "AIza-test-key" }
  : { apiKey: args.apiKey || "AIza-test-key" };
if (args.baseUrl) opts.httpOptions = { baseUrl: args.baseUrl }; // recording against a fake upstream
const ai = new GoogleGenAI(opts);

for (const c of args.calls || []) {
  const req = { model: c.model, contents: c.contents, config: c.config };
  try {
    if (c.op === "stream") {
      const parts = [];
      for await (const chunk of await ai.models.generateContentStream(req)) parts.push(chunk.text ?? "");
      print({ text: parts.join(""), chunks: parts.length });
    } else if (c.op === "generate") {
      const r = await ai.models.generateContent(req);
      print({ text: r.text, finish: r.candidates?.[0]?.finishReason, usage: r.usageMetadata?.totalTokenCount });
    } else if (c.op === "embed") {
      const r = await ai.models.embedContent(req);
      print({ values: r.embeddings.map((e) => e.values) });
    } else if (c.op === "list") {
      const names = [];
      for await (const m of await ai.models.list({ config: { pageSize: 2 } })) names.push(m.name);
      print({ names });
    } else if (c.op === "count") {
      const r = await ai.models.countTokens(req);
      print({ totalTokens: r.totalTokens });
    }
  } catch (e) {
    print({ status: e.status, message: String(e.message) });
  }
}
