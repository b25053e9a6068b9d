import { gptNeoCacheDir } from '../util/cache-dir.js';
import { type Progress, startProgress } from '../util/progress.js';
import {
  lambadaMetrics,
  multipleChoiceAccuracy,
  PILE_TOKENS_PER_BYTE,
  rollingPerplexityMetrics,
  tokenLevelMetrics,
} from './metrics.js';
import { countWhitespaceSeparatedPieces } from './python-text.js';
import {
  END_OF_TEXT,
  encodeLoglikelihoodRequest,
  type LoglikelihoodRequest,
  packTokenRecords,
  recordRequest,
  rollingWindows,
  type TokenEncoder,
  type TokenRequest,
} from './requests.js';
import type { EvalResults, PerplexityTaskMetrics, TaskMetrics, TaskRunInfo } from './results.js';
import { type ContinuationScore, scoreRequests, type ScoringModel } from './scorer.js';
import { isTaskName, TASK_NAMES, TASKS, type TaskName } from './tasks/index.js';
import type { LambadaTask, MultipleChoiceTask, PerplexityTask, TaskDataOptions } from './tasks/task.js';

/** A causal LM as evaluate() uses it; GPTNeoForCausalLM is one. */
export interface EvalModel extends ScoringModel {
  /** Weight format the model runs in, recorded in the results. */
  readonly dtype?: string;
}

export type EvalPhase = 'loglikelihood' | 'rolling' | 'token_records';

export interface EvalProgress {
  task: TaskName;
  phase: EvalPhase;
  /** Tokens fed to the model so far in this phase, and in total. */
  done: number;
  total: number;
}

export interface EvaluateOptions {
  model: EvalModel;
  /** GPT-2 BPE tokenizer (the harness always used GPT-2's). */
  tokenizer: TokenEncoder;
  /** Task names from TASK_NAMES. */
  tasks: readonly string[];
  /** Default: defaultEvalDataDir(). */
  dataDir?: string;
  /** Score only the first N documents of each task, in file order. */
  limit?: number;
  /** Sequences per forward pass. Default 4. */
  batchSize?: number;
  onProgress?: (progress: EvalProgress) => void;
  /** Progress bar with ETA on stderr (shown only when it is a terminal). Default true. */
  progressBar?: boolean;
  /** Recorded as config.model. */
  modelName?: string;
  /** Pile split to read: default 'test' (the card's "Pile test set"). */
  pileSplit?: 'test' | 'val';
  /** Only Pile documents of this meta.pile_set_name, like one of the harness's pile_* tasks. */
  pileSetName?: string;
  /** Records per batch of GPT-Neo's token-level evaluation (its Wikitext recipe used 8). Default 8. */
  tokenBatchSize?: number;
  /** mesh-tensorflow's z-loss coefficient, added to every token's loss in the token-level metrics. Default 1e-4. */
  zLoss?: number;
}

/** Where evaluation data is looked for by default: $GPT_NEO_CACHE/eval, else beside the Hugging Face cache. */
export function defaultEvalDataDir(): string {
  return gptNeoCacheDir('eval');
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  return value;
}

interface RunContext {
  options: EvaluateOptions;
  dataOptions: TaskDataOptions;
  maxLength: number;
  batchSize: number;
  tokenBatchSize: number;
  zLoss: number;
}

/**
 * Runs tasks the way the 2021 lm-evaluation-harness did (zero-shot, GPT-2 tokenizer, plain acc) and, for
 * the perplexity tasks, also GPT-Neo's own token-level evaluation behind the card's Pile and Wikitext numbers.
 */
export async function evaluate(options: EvaluateOptions): Promise<EvalResults> {
  const unknown = options.tasks.filter((name) => !isTaskName(name));
  if (unknown.length > 0) throw new Error(`unknown task ${unknown.join(', ')}; tasks are ${TASK_NAMES.join(', ')}`);
  const tasks = TASK_NAMES.filter((name) => options.tasks.includes(name));
  const limit = options.limit === undefined ? undefined : positiveInteger(options.limit, 'limit');
  const dataDir = options.dataDir ?? defaultEvalDataDir();
  const pileSplit = options.pileSplit ?? 'test';
  const context: RunContext = {
    options,
    dataOptions: { dataDir, limit, pileSplit, pileSetName: options.pileSetName },
    maxLength: options.model.config.max_position_embeddings,
    batchSize: positiveInteger(options.batchSize ?? 4, 'batchSize'),
    tokenBatchSize: positiveInteger(options.tokenBatchSize ?? 8, 'tokenBatchSize'),
    zLoss: options.zLoss ?? 1e-4,
  };

  const results: Partial<TaskMetrics> = {};
  const runs: Partial<Record<TaskName, TaskRunInfo>> = {};
  const versions: Partial<Record<TaskName, number>> = {};
  for (const name of tasks) {
    const task = TASKS[name];
    versions[name] = task.version;
    const run =
      task.kind === 'multiple_choice'
        ? await runMultipleChoice(name, task, context)
        : task.kind === 'lambada'
          ? await runLambada(name, task, context)
          : await runPerplexity(name, task, context);
    (results as Record<TaskName, unknown>)[name] = run.metrics;
    runs[name] = run.info;
  }

  return {
    results,
    config: {
      model: options.modelName ?? null,
      dtype: options.model.dtype ?? null,
      num_fewshot: 0,
      batch_size: context.batchSize,
      limit: limit ?? null,
      max_length: context.maxLength,
      data_dir: dataDir,
      tasks: runs,
      token_level: {
        record_length: context.maxLength + 1,
        batch_size: context.tokenBatchSize,
        z_loss: context.zLoss,
        tokens_per_byte: PILE_TOKENS_PER_BYTE,
        normalization: 'NFKC',
      },
      pile: { split: pileSplit, set_name: options.pileSetName ?? null },
    },
    versions,
  };
}

/** Scores requests with a progress bar and the caller's progress callback. */
async function score(
  context: RunContext,
  task: TaskName,
  phase: EvalPhase,
  requests: readonly TokenRequest[],
): Promise<ContinuationScore[]> {
  const { options } = context;
  let bar: Progress | undefined;
  try {
    return await scoreRequests(options.model, requests, {
      batchSize: context.batchSize,
      onProgress: (done, total) => {
        if (options.progressBar ?? true) {
          bar ??= startProgress(phase === 'loglikelihood' ? task : `${task} ${phase}`, total, 'tokens');
          bar.update(done);
        }
        options.onProgress?.({ task, phase, done, total });
      },
    });
  } finally {
    bar?.stop();
  }
}

function encode(context: RunContext, request: LoglikelihoodRequest): TokenRequest {
  return encodeLoglikelihoodRequest(context.options.tokenizer, request, context.maxLength);
}

async function runMultipleChoice(name: TaskName, task: MultipleChoiceTask, context: RunContext) {
  const { questions, files } = await task.load(context.dataOptions);
  const requests = questions.flatMap((question) => question.requests.map((request) => encode(context, request)));
  const scores = await score(context, name, 'loglikelihood', requests);
  let next = 0;
  const metrics = multipleChoiceAccuracy(
    questions.map((question) => ({
      gold: question.gold,
      choiceLogLikelihoods: question.requests.map(() => scores[next++]!.logLikelihood),
    })),
  );
  return { metrics, info: { files, documents: questions.length, requests: requests.length } };
}

async function runLambada(name: TaskName, task: LambadaTask, context: RunContext) {
  const { requests, files } = await task.load(context.dataOptions);
  const encoded = requests.map((request) => encode(context, request));
  const scores = await score(context, name, 'loglikelihood', encoded);
  return { metrics: lambadaMetrics(scores), info: { files, documents: requests.length, requests: requests.length } };
}

async function runPerplexity(name: TaskName, task: PerplexityTask, context: RunContext) {
  const { tokenizer } = context.options;
  const { documents, recordTexts, files } = await task.load(context.dataOptions);

  // Harness convention: every document scored on its own with rolling windows.
  const windowsPerDocument = documents.map((document) =>
    rollingWindows(tokenizer.encode(document.target), context.maxLength),
  );
  const windowScores = await score(context, name, 'rolling', windowsPerDocument.flat());
  let next = 0;
  const rolling = rollingPerplexityMetrics(
    documents.map((document, d) => ({
      logLikelihood: windowsPerDocument[d]!.reduce((sum) => sum + windowScores[next++]!.logLikelihood, 0),
      words: countWhitespaceSeparatedPieces(document.text),
      bytes: Buffer.byteLength(document.text, 'utf8'),
    })),
  );

  // GPT-Neo convention: NFKC (its ftfy step), <|endoftext|> after each text, packed records, complete batches.
  const records = packTokenRecords(
    recordTexts.map((text) => [...tokenizer.encode(text.normalize('NFKC')), END_OF_TEXT]),
    context.maxLength + 1,
  );
  const scoredRecords = records.slice(0, records.length - (records.length % context.tokenBatchSize));
  const recordScores = await score(context, name, 'token_records', scoredRecords.map(recordRequest));
  const tokenLevel = tokenLevelMetrics(
    recordScores.map((s) => ({
      loss: -s.logLikelihood + context.zLoss * s.logSumExpSquaredSum,
      tokenCount: s.tokenCount,
    })),
    context.tokenBatchSize,
  );

  const metrics: PerplexityTaskMetrics = {
    token_perplexity: tokenLevel.token_perplexity,
    token_bits_per_byte: tokenLevel.token_bits_per_byte,
    ...rolling,
  };
  const info: TaskRunInfo = {
    files,
    documents: documents.length,
    requests: windowScores.length,
    token_records: scoredRecords.length,
    token_batches: tokenLevel.batches,
  };
  return { metrics, info };
}
