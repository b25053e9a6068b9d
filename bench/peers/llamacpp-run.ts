// llama.cpp as a peer, through node-llama-cpp (its prebuilt Node binding, CPU only), in one fresh process:
//
//   node llamacpp-run.js <node_modules> <gguf> --threads T --contexts 16,1900 --tokens 32 --prefill 512
//   node llamacpp-run.js <node_modules> <gguf> --threads T --batched 8 --prompt 16 --new-tokens 64
//
// The first form measures what bench/run.ts measures of ours: for each context C, a C-token prompt (untimed), one
// untimed decode step, then `tokens` batch-1 decode steps timed; and a 512-token prompt. The second measures
// what bench/serve.ts measures of our server: one sequence, then `batched` sequences at once, each a different
// prompt followed by its new tokens, greedy. Prints a DecodeReport or a BatchedReport as one JSON line.
import { parseArgs } from 'node:util';
import {
  type BatchedReport,
  type DecodeReport,
  importPeerPackage,
  positiveInteger,
  positiveIntegers,
  promptTokens,
  runDriver,
  secondsSince,
} from './driver.js';

// The little of node-llama-cpp's API used here (its own types stay in the peers folder).
interface NodeLlamaCpp {
  getLlama(options: {
    gpu: false;
    build: 'never';
    maxThreads: number;
    logLevel: 'warn';
    logger(level: string, message: string): void;
  }): Promise<Llama>;
}
interface Llama {
  readonly llamaCppRelease: { release: string };
  loadModel(options: { modelPath: string; gpuLayers: number; useMmap: boolean }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface LlamaModel {
  /** `contextSize` is per sequence: node-llama-cpp gives each of `sequences` its own. */
  createContext(options: { contextSize: number; sequences: number; threads: { ideal: number; min: number } }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
interface LlamaSequence {
  readonly nextTokenIndex: number;
  clearHistory(): Promise<void>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  /** Each step: one llama_decode of the previous token (the prompt first), then sampling; yields the sampled token. */
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void>;
}

/** Greedy, and past end-of-text too: random weights may pick it, and a measurement must not stop there. */
const GREEDY = { temperature: 0, yieldEogToken: true };

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string' },
    contexts: { type: 'string', default: '16,1900' },
    tokens: { type: 'string', default: '32' },
    prefill: { type: 'string', default: '512' },
    batched: { type: 'string' },
    prompt: { type: 'string', default: '16' },
    'new-tokens': { type: 'string', default: '64' },
  },
});

runDriver(async () => {
  const [nodeModules, gguf] = positionals;
  if (nodeModules === undefined || gguf === undefined) throw new Error('usage: llamacpp-run.js <node_modules> <gguf> --threads <n> [--batched <streams>]');
  const threads = positiveInteger('--threads', values.threads);
  // Every option is read before the model loads, so a wrong one fails at once.
  let measure: (model: LlamaModel) => Promise<Omit<DecodeReport, 'engine'> | Omit<BatchedReport, 'engine'>>;
  if (values.batched === undefined) {
    const contexts = positiveIntegers('--contexts', values.contexts);
    const tokens = positiveInteger('--tokens', values.tokens);
    const prefill = positiveInteger('--prefill', values.prefill);
    measure = (model) => decodeAndPrefill(model, threads, contexts, tokens, prefill);
  } else {
    const streams = positiveInteger('--batched', values.batched);
    const promptLength = positiveInteger('--prompt', values.prompt);
    const newTokens = positiveInteger('--new-tokens', values['new-tokens']);
    measure = (model) => batched(model, threads, streams, promptLength, newTokens);
  }
  const { module, version } = await importPeerPackage(nodeModules, 'node-llama-cpp');
  const llama = await (module as NodeLlamaCpp).getLlama({
    gpu: false,
    build: 'never', // the prebuilt binary a user gets, never a local compile
    maxThreads: threads, // its default is at least 4, more than the threads ours gets
    logLevel: 'warn',
    logger: (level, message) => process.stderr.write(`[${level}] ${message}\n`), // stdout carries only the report
  });
  // Weights read into its own memory, its fastest setting (like llama-bench --no-mmap).
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0, useMmap: false });
  try {
    return { engine: `node-llama-cpp ${version} (llama.cpp ${llama.llamaCppRelease.release})`, ...(await measure(model)) };
  } finally {
    await model.dispose();
    await llama.dispose();
  }
});

/**
 * Room left in the context past the longest case: node-llama-cpp shifts the context (drops its oldest tokens)
 * when a generator reaches the context's end, which would make the last steps attend over fewer tokens.
 */
const CONTEXT_SHIFT_MARGIN = 64;

/** Pinned to `threads` (ideal and min), so it neither takes more nor backs off to fewer. */
function contextOptions(contextSize: number, sequences: number, threads: number) {
  return { contextSize, sequences, threads: { ideal: threads, min: threads } };
}

async function decodeAndPrefill(
  model: LlamaModel,
  threads: number,
  contexts: number[],
  tokens: number,
  prefill: number,
): Promise<Omit<DecodeReport, 'engine'>> {
  const longest = Math.max(prefill, ...contexts.map((c) => c + 1 + tokens));
  const context = await model.createContext(contextOptions(longest + CONTEXT_SHIFT_MARGIN, 1, threads));
  try {
    const sequence = context.getSequence();
    await decodeAfterPrompt(sequence, 8, 4, 999); // warm-up: both the prompt's batched path and single steps
    const decode: Record<string, number> = {};
    for (const length of contexts) decode[length] = await decodeAfterPrompt(sequence, length, tokens, length);
    return { decode, prefill: { tokens: prefill, tokensPerSecond: await prefillSpeed(sequence, prefill) } };
  } finally {
    await context.dispose();
  }
}

/**
 * Tokens/s of a `length`-token prompt into an empty cache. An untimed one first: a batch of that size may be new
 * to the engine, while ours has run longer prompts before its timed prefill.
 */
async function prefillSpeed(sequence: LlamaSequence, length: number): Promise<number> {
  let seconds = 0;
  for (const salt of [6, 7]) {
    await sequence.clearHistory();
    const started = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(promptTokens(length, salt));
    seconds = secondsSince(started);
  }
  return length / seconds;
}

/** Tokens/s of `tokens` decode steps after a `length`-token prompt and one untimed step. */
async function decodeAfterPrompt(sequence: LlamaSequence, length: number, tokens: number, salt: number): Promise<number> {
  await sequence.clearHistory();
  await sequence.evaluateWithoutGeneratingNewTokens(promptTokens(length, salt));
  const steps = sequence.evaluate(promptTokens(1, salt + 1), GREEDY);
  await steps.next();
  const started = performance.now();
  for (let i = 0; i < tokens; i++) {
    if ((await steps.next()).done) throw new Error(`decoding stopped after ${i} of ${tokens} tokens`);
  }
  const seconds = secondsSince(started);
  await steps.return();
  // The untimed step and each timed one put one token into the cache after the prompt.
  if (sequence.nextTokenIndex !== length + 1 + tokens) {
    throw new Error(`the sequence holds ${sequence.nextTokenIndex} tokens, expected ${length + 1 + tokens}`);
  }
  return tokens / seconds;
}

async function batched(
  model: LlamaModel,
  threads: number,
  streams: number,
  promptLength: number,
  newTokens: number,
): Promise<Omit<BatchedReport, 'engine'>> {
  // One context for both runs, as our server keeps its slots whether one stream or all are busy.
  const context = await model.createContext(contextOptions(promptLength + newTokens + 1 + CONTEXT_SHIFT_MARGIN, streams, threads));
  try {
    const sequences = Array.from({ length: streams }, () => context.getSequence());
    // Warm-up of both paths: one sequence's steps and all sequences' batched steps.
    await generateTogether(sequences.slice(0, 1), promptLength, 4, 900);
    await generateTogether(sequences, promptLength, 4, 900);
    return {
      streams,
      oneStreamTokensPerSecond: await generateTogether(sequences.slice(0, 1), promptLength, newTokens, 1),
      streamsTokensPerSecond: await generateTogether(sequences, promptLength, newTokens, 10),
    };
  } finally {
    await context.dispose();
  }
}

/**
 * Each sequence gets a different prompt and generates `newTokens` tokens, all at once (node-llama-cpp evaluates
 * concurrent sequences of a context in one llama_decode); all new tokens over the time until the last ends.
 */
async function generateTogether(sequences: LlamaSequence[], promptLength: number, newTokens: number, salt: number): Promise<number> {
  await Promise.all(sequences.map((sequence) => sequence.clearHistory()));
  const started = performance.now();
  const counts = await Promise.all(sequences.map((sequence, i) => generate(sequence, promptTokens(promptLength, salt + i), newTokens)));
  const seconds = secondsSince(started);
  if (counts.some((count) => count !== newTokens)) throw new Error(`sequences generated ${counts.join(', ')} tokens, expected ${newTokens} each`);
  return (newTokens * sequences.length) / seconds;
}

async function generate(sequence: LlamaSequence, prompt: number[], newTokens: number): Promise<number> {
  let count = 0;
  for await (const _token of sequence.evaluate(prompt, GREEDY)) {
    if (++count === newTokens) break;
  }
  return count;
}
