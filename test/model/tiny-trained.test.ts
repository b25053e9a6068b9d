// The small trained GPT-Neo: validation loss, next-token top-10 and greedy continuations from the reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { argmax, fixture, logSumExp, maxAbsDiff, readReference } from '../helpers/fixtures.js';

const ref = readReference('tiny-trained');

describe('tiny-trained matches the reference', () => {
  let model: GPTNeoForCausalLM;
  beforeAll(async () => {
    model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-trained'));
  });
  afterAll(() => model.dispose());

  it('validation loss over non-overlapping 256-token windows (HF shift)', async () => {
    const ids: number[] = ref.valid.input_ids;
    const windows = ref.valid.hf_windows;
    let totalNll = 0;
    let scored = 0;
    for (let start = 0, k = 0; start + 1 < ids.length; start += 256, k++) {
      const window = ids.slice(start, start + 256);
      const { loss } = await model.forward({ input_ids: [window], labels: [window] });
      const nll = loss! * (window.length - 1);
      const count = window.length - 1;
      expect(Math.abs(nll - windows.per_window_nll[k]) / count).toBeLessThan(ref.tolerances.mean_loss);
      totalNll += nll;
      scored += window.length - 1;
    }
    expect(scored).toBe(windows.n_scored_tokens);
    expect(Math.abs(totalNll / scored - windows.mean_loss)).toBeLessThan(ref.tolerances.mean_loss);
  });

  it.each(ref.next_token_top10.cases as any[])('next token after $prompt', async (c) => {
    const { logits } = await model.forward({ input_ids: [c.prompt_ids] });
    const V = logits.dims[2]!;
    const last = logits.data.subarray(logits.data.length - V);
    expect(argmax(last)).toBe(c.argmax);
    expect(maxAbsDiff(c.top10_ids.map((id: number) => last[id]), c.top10_logits)).toBeLessThan(ref.tolerances.logits);
    expect(Math.abs(logSumExp(last) - c.logsumexp)).toBeLessThan(ref.tolerances.logits);
  });

  it.each(ref.greedy.cases as any[])('greedy continuation of $prompt', async (c) => {
    const [sequence] = await model.generate({ input_ids: [c.prompt_ids], max_new_tokens: c.new_ids.length });
    expect(sequence!.slice(c.prompt_ids.length)).toEqual(c.new_ids);
  });
});
