import cliProgress from 'cli-progress';

/** What a training run shows: a live bar on a terminal, one line per log record otherwise. */
export interface TrainingDisplay {
  /** After every optimizer step. */
  step(step: number, loss: number, learningRate: number, tokensPerSecond: number): void;
  /** Log records (training loss at --logging-steps, validation at --eval-steps, checkpoints). */
  log(record: Record<string, number | string>): void;
  stop(): void;
}

function format(record: Record<string, number | string>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(record).map(([k, v]) => [k, typeof v === 'number' ? Number(v.toPrecision(6)) : v])));
}

/**
 * On a terminal (stderr a TTY and GPT_NEO_NO_PROGRESS unset): a bar with step, loss, learning rate, tokens/s
 * and ETA, log records printed above it. Otherwise quiet: only the log records, one JSON line each, on stdout.
 */
export function trainingDisplay(totalSteps: number, firstStep: number): TrainingDisplay {
  if (!process.stderr.isTTY || process.env.GPT_NEO_NO_PROGRESS) {
    return { step() {}, log: (record) => process.stdout.write(`${format(record)}\n`), stop() {} };
  }
  const bars = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      format: 'train [{bar}] step {value}/{total} | loss {loss} | lr {lr} | {speed} tok/s | ETA {eta_formatted}',
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = bars.create(totalSteps, firstStep, { loss: '-', lr: '-', speed: '-' });
  return {
    step(step, loss, learningRate, tokensPerSecond) {
      bar.update(step, { loss: loss.toFixed(4), lr: learningRate.toExponential(2), speed: tokensPerSecond.toFixed(0) });
    },
    log: (record) => bars.log(`${format(record)}\n`),
    stop: () => bars.stop(),
  };
}
