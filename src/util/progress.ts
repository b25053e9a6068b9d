import cliProgress from 'cli-progress';

/** A progress display for long work; silent when stderr is not a terminal (pipes, CI, tests). */
export interface Progress {
  /** Sets the amount done so far (bytes, tokens, documents). */
  update(done: number): void;
  /** Adds to the amount done. */
  increment(delta?: number): void;
  stop(): void;
}

export type ProgressUnit = 'bytes' | 'tokens' | 'items';

const silent: Progress = { update() {}, increment() {}, stop() {} };

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/**
 * Starts a progress bar on stderr showing amount, rate and ETA, or a silent one when stderr is not a TTY
 * (or GPT_NEO_NO_PROGRESS is set).
 */
export function startProgress(label: string, total: number, unit: ProgressUnit = 'items'): Progress {
  if (!process.stderr.isTTY || process.env.GPT_NEO_NO_PROGRESS) return silent;
  const started = Date.now();
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
      format: (options, params) => {
        const width = options.barsize ?? 30;
        const filled = Math.round(params.progress * width);
        const seconds = (Date.now() - started) / 1000;
        const rate = seconds > 0 ? params.value / seconds : 0;
        const show = (n: number) => (unit === 'bytes' ? formatBytes(n) : String(Math.round(n)));
        const rateText = unit === 'bytes' ? `${formatBytes(rate)}/s` : `${rate.toFixed(1)} ${unit}/s`;
        const eta = Number.isFinite(params.eta) && params.value > 0 ? `${params.eta}s` : '?';
        return `${label} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${show(params.value)}/${show(params.total)} ${rateText} ETA ${eta}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  let done = 0;
  return {
    update(value) {
      done = value;
      bar.update(done);
    },
    increment(delta = 1) {
      done += delta;
      bar.update(done);
    },
    stop() {
      bar.stop();
    },
  };
}

/**
 * A one-line "waiting" notice on stderr that counts the seconds, for work that is blocked on another process
 * (a lock); silent when stderr is not a terminal, like the progress bars.
 */
export function startWaitNotice(waitingFor: string): { stop(): void } {
  if (!process.stderr.isTTY || process.env.GPT_NEO_NO_PROGRESS) return silent;
  const started = Date.now();
  const show = () => {
    const seconds = Math.round((Date.now() - started) / 1000);
    process.stderr.write(`\r\x1b[2KWaiting for ${waitingFor} (${seconds} s)`);
  };
  show();
  const timer = setInterval(show, 1000);
  return {
    stop() {
      clearInterval(timer);
      process.stderr.write('\r\x1b[2K');
    },
  };
}
