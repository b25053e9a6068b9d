export { EvalDataError } from './data.js';
export {
  defaultEvalDataDir,
  evaluate,
  type EvalModel,
  type EvalPhase,
  type EvalProgress,
  type EvaluateOptions,
} from './evaluate.js';
export type { AccuracyMetrics, LambadaMetrics, RollingPerplexityMetrics } from './metrics.js';
export {
  formatResultsTable,
  type EvalConfig,
  type EvalResults,
  type PerplexityTaskMetrics,
  type TaskMetrics,
  type TaskRunInfo,
} from './results.js';
export { TASK_NAMES, type TaskName } from './tasks/index.js';
