// `npm run bench:train`: fine-tuning speed and peak memory on random weights of GPT-Neo shapes: a full
// fine-tune of the 125M shape (block 512, batch 4) and LoRA (r 8, q_proj + v_proj) on the 1.3B shape (block 512,
// batch 1), each in a fresh process, against the float32 GEMM peak that ONNX Runtime reaches on this machine.
// The full fine-tune alternates with its PyTorch peer round by round, so both see the same machine load.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { ensureRandomCheckpoint, GPT_NEO_1_3B_CONFIG, writeRandomCheckpoint } from '../test/helpers/random-checkpoint.js';
import { BENCH_SOURCE } from './checkout.js';
import { fastestRun } from './fastest-run.js';
import { GraphBuilder, OrtTensor } from './internals.js';

const program = new Command('bench:train')
  .option('--folder <dir>', 'where the random checkpoints live', path.join(os.homedir(), '.cache', 'gpt-neo-bench'))
  .option('--threads <n>', 'compute threads', String(os.availableParallelism()))
  .option('--steps <n>', 'timed steps after one warm-up step', '2')
  .option('--modes <list>', 'which runs: full (125M full fine-tune), lora (1.3B LoRA), comma separated', 'full,lora')
  .option('--rounds <n>', 'full fine-tune runs, each followed by the PyTorch peer when there is one', '2')
  .parse();
const options = program.opts<{ folder: string; threads: string; steps: string; modes: string; rounds: string }>();
const modes = options.modes.split(',');
const threads = Number(options.threads);

/** config.json of EleutherAI/gpt-neo-125M (the 1.3B's with its sizes). */
const GPT_NEO_125M_CONFIG = {
  ...GPT_NEO_1_3B_CONFIG,
  hidden_size: 768,
  num_heads: 12,
  num_layers: 12,
  attention_layers: Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 'global' : 'local')),
  attention_types: [[['global', 'local'], 6]],
};

/** The float32 GEMM rate ONNX Runtime reaches here: a 2048^3 MatMul, fastest of 10 runs, in FLOP/s. */
async function gemmPeak(): Promise<number> {
  const n = 2048;
  const g = new GraphBuilder();
  const a = g.input('a', 'float32', [n, n]);
  const b = g.input('b', 'float32', [n, n]);
  g.output(g.node('MatMul', [a, b]), 'c', 'float32', [n, n]);
  const values = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000);
  const feeds = { a: new OrtTensor('float32', values, [n, n]), b: new OrtTensor('float32', values, [n, n]) };
  return (2 * n ** 3) / (await fastestRun(g, feeds, { threads }, 'Preparing GEMM probe'));
}

interface TrainReport {
  tokensPerSecond: number;
  secondsPerStep: number;
  peakRssBytes: number;
  parameters: number;
}

async function runChild(folder: string, mode: 'full' | 'lora', block: number, batch: number): Promise<TrainReport> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'train-run.js');
  const { stdout } = await promisify(execFile)(process.execPath, [script, folder, mode, String(block), String(batch), String(threads), options.steps], {
    env: { ...process.env, GPT_NEO_NO_PROGRESS: '1' },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as TrainReport;
}

/** The same step in PyTorch float32 on the CPU (bench/torch-train-step.py), when $PYTHON (default python3) has torch. */
async function torchPeer(block: number, batch: number): Promise<(Omit<TrainReport, 'parameters'> & { gemmFlops: number }) | undefined> {
  const script = path.join(BENCH_SOURCE, 'torch-train-step.py');
  const { hidden_size: C, num_layers: L, num_heads: H } = GPT_NEO_125M_CONFIG;
  try {
    const args = [script, C, L, H, block, batch, threads, options.steps].map(String);
    // Debian's torch does not know its BLAS is OpenBLAS, so torch.set_num_threads does not reach it.
    const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
    const { stdout } = await promisify(execFile)(process.env.PYTHON ?? 'python3', args, { maxBuffer: 1 << 20, env });
    return JSON.parse(stdout) as Omit<TrainReport, 'parameters'> & { gemmFlops: number };
  } catch (error) {
    if ((error as { stderr?: string }).stderr?.includes("No module named 'torch'") || (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Matrix-product FLOPs of one training step over `tokens` tokens of `block`: forward 2, backward 4 (inputs and
 * weights) per weight and token; frozen weights (LoRA) need no weight gradient, so 4. Attention's two products
 * per layer cost 2 T^2 C per block row forward, twice that backward.
 */
function stepFlops(config: typeof GPT_NEO_1_3B_CONFIG, block: number, batch: number, frozen: boolean): number {
  const { hidden_size: C, num_layers: L, vocab_size: V } = config;
  const weights = L * 12 * C * C + V * C;
  const tokens = block * batch;
  return (frozen ? 4 : 6) * tokens * weights + 3 * L * 2 * 2 * batch * block * block * C;
}

/**
 * Activations the backward pass must keep, in float32. A block's backward reads about 22 [tokens, hidden]
 * tensors of its forward (LayerNorm inputs and outputs, q, k, v and their head views, the attention context,
 * the MLP's inner activations) and 2 [batch, heads, block, block + 1] (attention scores and probabilities); the
 * loss's gradient needs three [rows, vocab] tensors. Without checkpointing (PyTorch's default) every block's
 * are kept at once, with all rows of the loss. With the block checkpointing the Trainer does, the backward keeps
 * the residual stream entering every block and leaving the last, one block's activations (recomputed from its
 * saved input) and one chunk of the loss's rows (`chunkRows`).
 */
function activationBytes(config: typeof GPT_NEO_1_3B_CONFIG, block: number, batch: number, checkpointed: boolean): number {
  const { hidden_size: C, num_layers: L, num_heads: H, vocab_size: V } = config;
  const tokens = block * batch;
  const perBlock = 22 * tokens * C + 2 * batch * H * block * (block + 1);
  if (!checkpointed) return 4 * (L * perBlock + 3 * tokens * V);
  const chunkRows = Math.ceil(tokens / Math.ceil(tokens / Math.floor(2 ** 26 / V)));
  return 4 * ((L + 1) * tokens * C + perBlock + 3 * chunkRows * V);
}

/** Parameters of a GPT-Neo config: embeddings, per block 12 C^2 weights + 10 C biases and LayerNorms, ln_f. */
function parameterCount(config: typeof GPT_NEO_1_3B_CONFIG): number {
  const { hidden_size: C, num_layers: L, vocab_size: V, max_position_embeddings: P } = config;
  return (V + P) * C + L * (12 * C * C + 10 * C) + 2 * C;
}

const gb = (bytes: number) => (bytes / 1e9).toFixed(2);
const row = (label: string, report: TrainReport, shape: string, flops: number, budget: string) =>
  `| ${label} | ${(report.parameters / 1e6).toFixed(2)} M trained | ${shape} | ${report.tokensPerSecond.toFixed(1)} tok/s | ` +
  `${report.secondsPerStep.toFixed(1)} s/step | GEMM share of peak ${((flops / report.secondsPerStep / peak) * 100).toFixed(0)}% | ` +
  `peak RSS ${gb(report.peakRssBytes)} GB | budget ${budget} |`;

console.error(`measuring the float32 GEMM peak with ${threads} threads...`);
const peak = await gemmPeak();
console.log(`float32 GEMM peak (2048^3 MatMul, ONNX Runtime, ${threads} threads): ${(peak / 1e9).toFixed(1)} GFLOP/s`);

if (modes.includes('full')) {
  const small = path.join(options.folder, 'gpt-neo-125M-random');
  if (!existsSync(path.join(small, 'model.safetensors'))) await writeRandomCheckpoint(small, GPT_NEO_125M_CONFIG);
  // The full fine-tune's memory budget (docs/training.md): 16 bytes per parameter (weights, gradients, two moments) + activations + 1 GB.
  const budget = (checkpointed: boolean) =>
    gb(16 * parameterCount(GPT_NEO_125M_CONFIG) + activationBytes(GPT_NEO_125M_CONFIG, 512, 4, checkpointed) + 1e9);
  const flops = stepFlops(GPT_NEO_125M_CONFIG, 512, 4, false);
  for (let round = 1; round <= Number(options.rounds); round++) {
    console.error(`round ${round}: full fine-tune, 125M shape, block 512, batch 4...`);
    const full = await runChild(small, 'full', 512, 4);
    console.log(row(`full fine-tune 125M (round ${round})`, full, 'block 512 x batch 4', flops, `${budget(true)} GB (${budget(false)} GB counting every block's activations)`));
    console.error(`round ${round}: the PyTorch peer...`);
    const torch = await torchPeer(512, 4);
    if (!torch) {
      console.log('PyTorch peer: python3 with torch not found, skipped');
      continue;
    }
    console.log(row(`PyTorch peer, 125M (round ${round})`, { ...torch, parameters: full.parameters }, 'block 512 x batch 4', flops, '-'));
    console.log(`round ${round}: PyTorch's own float32 GEMM (2048^3 matmul): ${(torch.gemmFlops / 1e9).toFixed(1)} GFLOP/s`);
    console.log(`round ${round}: ours / PyTorch tokens/s = ${(full.tokensPerSecond / torch.tokensPerSecond).toFixed(2)}`);
  }
}

if (modes.includes('lora')) {
  const large = await ensureRandomCheckpoint(path.join(options.folder, 'gpt-neo-1.3B-random'));
  console.error('LoRA r 8 on q_proj, v_proj, 1.3B shape, block 512, batch 1...');
  const lora = await runChild(large, 'lora', 512, 1);
  const estimate = `(float32 weights ${gb(4 * parameterCount(GPT_NEO_1_3B_CONFIG))} GB + activations ${gb(activationBytes(GPT_NEO_1_3B_CONFIG, 512, 1, true))} GB)`;
  console.log(row('LoRA 1.3B', lora, 'block 512 x batch 1', stepFlops(GPT_NEO_1_3B_CONFIG, 512, 1, true), `8.00 GB ${estimate}`));
}
