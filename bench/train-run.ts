// One training benchmark process: a Trainer on a random checkpoint, a warm-up step, then timed steps.
// Prints { tokensPerSecond, secondsPerStep, peakRssBytes, parameters } as JSON.
// The trainer's module alone, not the package's index: the whole package would add to the peak RSS measured here.
import { Trainer } from '../src/train/index.js';

const [folder, mode, blockText, batchText, threadsText, stepsText] = process.argv.slice(2) as [string, 'full' | 'lora', string, string, string, string];
const [T, B, steps] = [Number(blockText), Number(batchText), Number(stepsText)];
const trainer = await Trainer.from_pretrained(folder, {
  learning_rate: 1e-5,
  lr_scheduler_type: 'constant',
  threads: Number(threadsText),
  lora: mode === 'lora' ? { r: 8, alpha: 16 } : undefined,
});
const input_ids = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (b * 7919 + t * 104729) % 50000));
await trainer.step({ input_ids, labels: input_ids });
const started = performance.now();
for (let step = 0; step < steps; step++) await trainer.step({ input_ids, labels: input_ids });
const secondsPerStep = (performance.now() - started) / 1000 / steps;
const parameters = [...trainer.parameters().values()].reduce((sum, p) => sum + p.length, 0);
await trainer.dispose();
process.stdout.write(
  JSON.stringify({ tokensPerSecond: (B * T) / secondsPerStep, secondsPerStep, peakRssBytes: process.resourceUsage().maxRSS * 1024, parameters }),
);
