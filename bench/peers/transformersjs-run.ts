// transformers.js as a peer (its Node build on onnxruntime-node, CPU), in one fresh process:
//
//   node transformersjs-run.js <node_modules> <export folder> --dtype fp32|q8|q4 --threads T --contexts 16 --tokens 32 --prefill 512
//
// The export folder is Optimum's layout, as transformers.js users download it (config.json, onnx/model.onnx,
// onnx/model_quantized.onnx, onnx/model_q4.onnx). Measured through generate(), as its users decode, with a streamer
// noting when each token arrives: for each context C, a C-token prompt, one untimed step, then `tokens` steps
// timed; prefill is a 512-token prompt to its first token, after an untimed one. Prints a DecodeReport as one JSON line.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type DecodeReport, dependencyVersion, importPeerPackage, positiveInteger, positiveIntegers, promptTokens, runDriver } from './driver.js';

// The little of transformers.js' API used here (its own types stay in the peers folder).
interface TransformersJs {
  env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
  AutoModelForCausalLM: {
    from_pretrained(
      id: string,
      options: {
        dtype: string;
        device: 'cpu';
        local_files_only: true;
        session_options: { intraOpNumThreads: number; interOpNumThreads: number };
      },
    ): Promise<CausalLM>;
  };
  Tensor: new (type: 'int64', data: BigInt64Array, dims: number[]) => unknown;
}
interface CausalLM {
  generate(options: {
    input_ids: unknown;
    attention_mask: unknown;
    max_new_tokens: number;
    do_sample: false;
    /** None: random weights must not stop at end-of-text. */
    eos_token_id: null;
    /** generate() calls put() with the prompt before its first pass, then with each new token. */
    streamer: { put(tokens: bigint[][]): void; end(): void };
  }): Promise<unknown>;
  dispose(): Promise<unknown>;
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    dtype: { type: 'string' },
    threads: { type: 'string' },
    contexts: { type: 'string', default: '16' },
    tokens: { type: 'string', default: '32' },
    prefill: { type: 'string', default: '512' },
  },
});

runDriver(async () => {
  const [nodeModules, exportFolder] = positionals;
  if (nodeModules === undefined || exportFolder === undefined || values.dtype === undefined) {
    throw new Error('usage: transformersjs-run.js <node_modules> <export folder> --dtype <fp32|q8|q4> --threads <n>');
  }
  const threads = positiveInteger('--threads', values.threads);
  const contexts = positiveIntegers('--contexts', values.contexts);
  const tokens = positiveInteger('--tokens', values.tokens);
  const prefill = positiveInteger('--prefill', values.prefill);
  const { module, version, entry } = await importPeerPackage(nodeModules, '@huggingface/transformers');
  const { env, AutoModelForCausalLM, Tensor } = module as TransformersJs;
  // The export is read from disk only: its folder's parent as the local model root, its name as the model id.
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(path.resolve(exportFolder)) + path.sep;
  const model = await AutoModelForCausalLM.from_pretrained(path.basename(path.resolve(exportFolder)), {
    dtype: values.dtype,
    device: 'cpu',
    local_files_only: true,
    session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
  });
  try {
    /** Times (performance.now()) at which each new token of a `length`-token prompt arrived. */
    const tokenTimes = async (length: number, newTokens: number, salt: number): Promise<{ started: number; times: number[] }> => {
      const ids = BigInt64Array.from(promptTokens(length, salt), BigInt);
      const times: number[] = [];
      let promptSeen = false;
      const started = performance.now();
      await model.generate({
        input_ids: new Tensor('int64', ids, [1, length]),
        attention_mask: new Tensor('int64', new BigInt64Array(length).fill(1n), [1, length]),
        max_new_tokens: newTokens,
        do_sample: false,
        eos_token_id: null,
        streamer: {
          put: () => (promptSeen ? times.push(performance.now()) : (promptSeen = true)),
          end: () => undefined,
        },
      });
      if (times.length !== newTokens) throw new Error(`generate() gave ${times.length} new tokens, expected ${newTokens}`);
      return { started, times };
    };

    await tokenTimes(16, 4, 999); // warm-up
    const decode: Record<string, number> = {};
    for (const length of contexts) {
      // Token 1 comes from the prompt's pass and token 2 from the untimed step; tokens 3.. are the timed steps.
      const { times } = await tokenTimes(length, tokens + 2, length);
      decode[length] = tokens / ((times[tokens + 1]! - times[1]!) / 1000);
    }
    // An untimed prompt of the same length first: that size may be new to the sessions, while ours has run longer
    // prompts before its timed prefill.
    await tokenTimes(prefill, 1, 6);
    const { started, times } = await tokenTimes(prefill, 1, 7);
    const engine = `transformers.js ${version} (onnxruntime-node ${dependencyVersion(entry, 'onnxruntime-node')})`;
    const report: DecodeReport = { engine, decode, prefill: { tokens: prefill, tokensPerSecond: prefill / ((times[0]! - started) / 1000) } };
    return report;
  } finally {
    await model.dispose();
  }
});
