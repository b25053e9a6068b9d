import type { LoglikelihoodRequest } from '../requests.js';

/** What every task loader gets. */
export interface TaskDataOptions {
  /** Folder holding one subfolder per task, laid out like shared/data/eval. */
  dataDir: string;
  /** Only the first `limit` documents of the file, in file order. */
  limit?: number;
  /** Pile: which split's file to read ('test' is what the card and the harness report). */
  pileSplit: 'test' | 'val';
  /** Pile: keep only documents whose meta.pile_set_name equals this (one harness pile_* task). */
  pileSetName?: string;
}

/** One question of a multiple-choice task: one request per choice, `gold` the index of the right one. */
export interface MultipleChoiceQuestion {
  requests: LoglikelihoodRequest[];
  gold: number;
}

/** A document of a perplexity task: the original text (for word and byte counts) and the string scored. */
export interface PerplexityDocument {
  text: string;
  target: string;
}

interface TaskBase {
  /** The harness's task VERSION, reported under "versions". */
  version: number;
}

export interface MultipleChoiceTask extends TaskBase {
  kind: 'multiple_choice';
  load(options: TaskDataOptions): Promise<{ questions: MultipleChoiceQuestion[]; files: string[] }>;
}

export interface LambadaTask extends TaskBase {
  kind: 'lambada';
  load(options: TaskDataOptions): Promise<{ requests: LoglikelihoodRequest[]; files: string[] }>;
}

export interface PerplexityTask extends TaskBase {
  kind: 'perplexity';
  load(options: TaskDataOptions): Promise<{
    /** Documents scored with rolling windows (the harness's convention). */
    documents: PerplexityDocument[];
    /** Texts packed into fixed-length records (GPT-Neo's token-level convention), before normalization. */
    recordTexts: string[];
    files: string[];
  }>;
}

export type Task = MultipleChoiceTask | LambadaTask | PerplexityTask;

