import type { AccuracyMetrics, LambadaMetrics, RollingPerplexityMetrics } from './metrics.js';
import { TASK_NAMES, type TaskName } from './tasks/index.js';

/** Both conventions of a perplexity task (shared/docs/eval-tasks.md §4). */
export interface PerplexityTaskMetrics extends RollingPerplexityMetrics {
  /** GPT-Neo's token-level perplexity (the card's "Pile PPL" / "Wikitext PPL"). */
  token_perplexity: number;
  /** GPT-Neo's token loss converted with its fixed tokens-per-byte ratio (the card's "Pile BPB"). */
  token_bits_per_byte: number;
}

export interface TaskMetrics {
  lambada: LambadaMetrics;
  wikitext: PerplexityTaskMetrics;
  pile: PerplexityTaskMetrics;
  winogrande: AccuracyMetrics;
  hellaswag: AccuracyMetrics;
  mathqa: AccuracyMetrics;
  pubmedqa: AccuracyMetrics;
  piqa: AccuracyMetrics;
}

/** What was read and run for one task. */
export interface TaskRunInfo {
  files: string[];
  documents: number;
  /** Model requests: choices, LAMBADA targets, rolling windows. */
  requests: number;
  /** Perplexity tasks: packed token-level records scored (complete batches only). */
  token_records?: number;
  /** Perplexity tasks: complete token-level batches. */
  token_batches?: number;
}

export interface EvalConfig {
  model: string | null;
  dtype: string | null;
  num_fewshot: 0;
  batch_size: number;
  limit: number | null;
  /** Context window: left truncation length, rolling window size, token-level record input length. */
  max_length: number;
  data_dir: string;
  tasks: Partial<Record<TaskName, TaskRunInfo>>;
  /** Settings of GPT-Neo's token-level convention (token_perplexity, token_bits_per_byte). */
  token_level: {
    record_length: number;
    batch_size: number;
    z_loss: number;
    tokens_per_byte: number;
    normalization: 'NFKC';
  };
  pile: { split: 'test' | 'val'; set_name: string | null };
}

/**
 * lm-evaluation-harness's results layout. A metric that is undefined for the run (a standard error of a
 * single document, token metrics without one complete batch) is NaN, which JSON.stringify writes as null.
 */
export interface EvalResults {
  results: Partial<TaskMetrics>;
  config: EvalConfig;
  versions: Partial<Record<TaskName, number>>;
}

type Convention = 'harness' | 'token' | 'rolling';

interface Row {
  metric: string;
  stderr?: string;
  /** The model card's column that this number reproduces. */
  card?: string;
  convention: Convention;
  percent?: boolean;
}

const PERPLEXITY_ROWS = (cardName: string, bpbOnCard: boolean): Row[] => [
  { metric: 'token_bits_per_byte', convention: 'token', ...(bpbOnCard ? { card: `${cardName} BPB` } : {}) },
  { metric: 'token_perplexity', convention: 'token', card: `${cardName} PPL` },
  { metric: 'word_perplexity', convention: 'rolling' },
  { metric: 'byte_perplexity', convention: 'rolling' },
  { metric: 'bits_per_byte', convention: 'rolling' },
];

const accuracyRow = (card: string): Row[] => [
  { metric: 'acc', stderr: 'acc_stderr', card, convention: 'harness', percent: true },
];

const ROWS: Record<TaskName, Row[]> = {
  pile: PERPLEXITY_ROWS('Pile', true),
  wikitext: PERPLEXITY_ROWS('Wikitext', false),
  lambada: [
    { metric: 'ppl', stderr: 'ppl_stderr', card: 'Lambada PPL', convention: 'harness' },
    { metric: 'acc', stderr: 'acc_stderr', card: 'Lambada Acc', convention: 'harness', percent: true },
  ],
  winogrande: accuracyRow('Winogrande'),
  hellaswag: accuracyRow('Hellaswag'),
  mathqa: accuracyRow('MathQA'),
  pubmedqa: accuracyRow('PubMedQA'),
  piqa: accuracyRow('PIQA'),
};

const CONVENTION_LABEL: Record<Convention, string> = {
  harness: 'harness 2021, zero-shot',
  token: 'GPT-Neo token level',
  rolling: 'harness rolling windows',
};

/** Four significant digits like the card (7.498, 13.10, 0.7527); accuracies as percentages with two decimals. */
function formatValue(value: number | undefined, percent: boolean): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  if (percent) return `${(100 * value).toFixed(2)}%`;
  return Math.abs(value) >= 1e4 ? value.toFixed(0) : value.toPrecision(4);
}

/** A Markdown table in the model card's terms: one row per reported number, with its ± standard error. */
export function formatResultsTable(results: EvalResults): string {
  const header = ['Task', 'Version', 'Metric', 'Value', '± Stderr', 'Card column', 'Convention'];
  const lines: string[][] = [];
  for (const task of TASK_NAMES) {
    const metrics = results.results[task] as Record<string, number> | undefined;
    if (!metrics) continue;
    ROWS[task].forEach((row, i) => {
      lines.push([
        i === 0 ? task : '',
        i === 0 ? String(results.versions[task] ?? '') : '',
        row.metric,
        formatValue(metrics[row.metric], row.percent ?? false),
        row.stderr ? `± ${formatValue(metrics[row.stderr], row.percent ?? false)}` : '',
        row.card ?? '',
        CONVENTION_LABEL[row.convention],
      ]);
    });
  }
  const widths = header.map((title, c) => Math.max(title.length, ...lines.map((line) => line[c]!.length)));
  const rightAligned = new Set([1, 3, 4]);
  const pad = (cell: string, c: number) => (rightAligned.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!));
  const render = (cells: string[]) => `| ${cells.map(pad).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (rightAligned.has(c) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [render(header), rule, ...lines.map(render)].join('\n');
}
