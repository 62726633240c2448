// llama.cpp's answers for the ChatFallback parity tests, through node-llama-cpp's prebuilt CPU binaries.
// Usage: node reference.mjs <request.json>; prints one JSON object.
// Request: { model, threads, prompts: [{ text, special }], greedy: { prompt: [ids], count }, teacher: [ids] }
// Answer:  { tokens: [[ids] per prompt], greedy: [ids], logits: [[per vocabulary id] after each teacher id] }
// The KV cache is F32 and flash attention off, so that llama.cpp computes attention in the precision the engine does.
import { readFile } from 'node:fs/promises';
import { getLlama } from 'node-llama-cpp';

const request = JSON.parse(await readFile(process.argv[2], 'utf8'));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', vramPadding: 0 });
const model = await llama.loadModel({ modelPath: request.model, useMmap: false, gpuLayers: 0 });
const answer = { tokens: [], greedy: [], logits: [] };
for (const prompt of request.prompts ?? []) {
  answer.tokens.push(Array.from(model.tokenize(prompt.text, prompt.special)));
}

const newContext = () => model.createContext({
  contextSize: 256,
  threads: request.threads ?? 2,
  batchSize: 256,
  flashAttention: false,
  experimentalKvCacheKeyType: 'F32',
  experimentalKvCacheValueType: 'F32',
});

if (request.greedy) {
  const context = await newContext();
  const sequence = context.getSequence();
  for await (const token of sequence.evaluate(request.greedy.prompt, { temperature: 0 })) {
    answer.greedy.push(token);
    if (answer.greedy.length >= request.greedy.count) break;
  }
  await context.dispose();
}

if (request.teacher) {
  const context = await newContext();
  const sequence = context.getSequence();
  const results = await sequence.controlledEvaluate(request.teacher.map((token) => [token, { generateNext: { logits: true } }]));
  for (const result of results) {
    const logits = new Array(request.vocabulary);
    for (const [token, value] of result.next.logits) logits[token] = value;
    answer.logits.push(Array.from(logits, (v) => v ?? null));
  }
  await context.dispose();
}

await model.dispose();
process.stdout.write(JSON.stringify(answer));
