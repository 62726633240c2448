// llama.cpp (through node-llama-cpp's prebuilt CPU binaries) on a GGUF file: prefill and greedy decode speed and
// resident memory, printed as key=value like the C# engine's bench mode.
// Usage: node decode.mjs <model.gguf> <threads> <prompt tokens> <generated tokens>
import { getLlama } from 'node-llama-cpp';

const [modelPath, threadsText, promptText, generateText] = process.argv.slice(2);
const threads = Number(threadsText);
const promptTokens = Number(promptText);
const generate = Number(generateText);
const loading = performance.now();
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
const model = await llama.loadModel({ modelPath, useMmap: false, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 1024, threads, batchSize: 512 });
const sequence = context.getSequence();
const load = (performance.now() - loading) / 1000;
// The same prompt the C# bench feeds: BOS, then ids 100 + (7 i mod 1000).
const prompt = [1, ...Array.from({ length: promptTokens - 1 }, (_, i) => 100 + ((7 * i) % 1000))];
const start = performance.now();
let first = 0;
let count = 0;
for await (const _ of sequence.evaluate(prompt, { temperature: 0 })) {
  if (count === 0) first = performance.now();
  count++;
  if (count >= generate) break;
}
const end = performance.now();
const rss = process.memoryUsage().rss / 1048576;
console.log(`engine=llama.cpp prefill_tps=${(promptTokens / ((first - start) / 1000)).toFixed(1)} ttft_s=${((first - start) / 1000).toFixed(2)} decode_tps=${((count - 1) / ((end - first) / 1000)).toFixed(2)} rss_mb=${rss.toFixed(0)} load_s=${load.toFixed(2)}`);
await context.dispose();
await model.dispose();
