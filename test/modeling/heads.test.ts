// Parity with Hugging Face's GPTNeoModel (output_hidden_states) and the three task heads, on the heads fixtures
// (tiny-random weights, references in float64).
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoModel, GPTNeoForCausalLM, GPTNeoForQuestionAnswering, GPTNeoForSequenceClassification, GPTNeoForTokenClassification, GPTNeoModel } from '../../src/modeling/index.js';
import { ConfigError, type Float32Tensor, parseConfig } from '../../src/model/index.js';
import { argmax, fixture, maxAbsDiff, readReference } from '../helpers/fixtures.js';

const TOL = 1e-4;
const features = JSON.parse(readFileSync(fixture('heads', 'features.json'), 'utf8'));

/** Largest difference from a nested [batch][seq][width] reference, over the positions whose mask is 1. */
function maxDiffAtRealTokens(tensor: Float32Tensor, reference: number[][][], mask: number[][]): number {
  const [B, T, W] = tensor.dims as [number, number, number];
  expect([B, T, W]).toEqual([reference.length, reference[0]!.length, reference[0]![0]!.length]);
  let max = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      if (mask[b]![t] !== 1) continue;
      max = Math.max(max, maxAbsDiff(tensor.data.subarray((b * T + t) * W, (b * T + t + 1) * W), reference[b]![t]!));
    }
  }
  return max;
}

const featureInput = { input_ids: features.input_ids, attention_mask: features.attention_mask, position_ids: features.position_ids };

describe('output_hidden_states', () => {
  it('GPTNeoModel returns last_hidden_state and num_layers + 1 hidden states as HF does', async () => {
    const model = await GPTNeoModel.from_pretrained(fixture('tiny-random'));
    const out = await model.forward({ ...featureInput, output_hidden_states: true });
    expect(out.hidden_states).toHaveLength(features.hidden_states.length);
    out.hidden_states!.forEach((state, i) => {
      expect(maxDiffAtRealTokens(state, features.hidden_states[i], features.attention_mask)).toBeLessThan(TOL);
    });
    expect(maxDiffAtRealTokens(out.last_hidden_state, features.last_hidden_state, features.attention_mask)).toBeLessThan(TOL);
    expect(out.hidden_states!.at(-1)!.data).toEqual(out.last_hidden_state.data);

    const plain = await model.forward(featureInput);
    expect(plain.hidden_states).toBeUndefined();
    expect(plain.last_hidden_state.data).toEqual(out.last_hidden_state.data);
    await model.dispose();
  });

  it('GPTNeoForCausalLM.forward gives the same hidden states beside its usual logits', async () => {
    const model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-random'));
    const withStates = await model.forward({ ...featureInput, output_hidden_states: true });
    const usual = await model.forward(featureInput);
    expect(usual.hidden_states).toBeUndefined();
    expect(withStates.logits.dims).toEqual(usual.logits.dims);
    expect(maxAbsDiff(withStates.logits.data, usual.logits.data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(withStates.logits.logsumexp, usual.logits.logsumexp)).toBeLessThan(1e-5);
    withStates.hidden_states!.forEach((state, i) => {
      expect(maxDiffAtRealTokens(state, features.hidden_states[i], features.attention_mask)).toBeLessThan(TOL);
    });
    await model.dispose();
  });

  it('a left-padded row gives the hidden states of the row alone', async () => {
    const model = await GPTNeoModel.from_pretrained(fixture('tiny-random'));
    const padded = await model.forward(featureInput);
    const pad = features.attention_mask[1].indexOf(1);
    const alone = await model.forward({ input_ids: [features.input_ids[1].slice(pad)] });
    const [, T, C] = padded.last_hidden_state.dims as [number, number, number];
    expect(maxAbsDiff(padded.last_hidden_state.data.subarray((T + pad) * C, 2 * T * C), alone.last_hidden_state.data)).toBeLessThan(1e-5);
    await model.dispose();
  });
});

describe('GPTNeoForSequenceClassification', () => {
  const ref = readReference('heads/seqcls');
  let model: GPTNeoForSequenceClassification;
  beforeAll(async () => {
    model = await GPTNeoForSequenceClassification.from_pretrained(fixture('heads', 'seqcls'));
  });
  afterAll(() => model.dispose());

  it('scores each row at its last token that is not pad_token_id', async () => {
    const { logits } = await model.forward({ input_ids: ref.input_ids, attention_mask: ref.attention_mask });
    expect(logits.dims).toEqual([3, 3]);
    expect(maxAbsDiff(logits.data, ref.logits.flat())).toBeLessThan(TOL);
    const labels = [0, 1, 2].map((b) => model.config.id2label[argmax(logits.data.subarray(b * 3, b * 3 + 3))]);
    expect(labels).toEqual(ref.labels);
  });

  it('a right-padded row scores as the row alone', async () => {
    for (let b = 1; b < 3; b++) {
      const ids = ref.input_ids[b].slice(0, ref.pooled_token_index[b] + 1);
      const { logits } = await model.forward({ input_ids: [ids] });
      expect(maxAbsDiff(logits.data, ref.logits[b])).toBeLessThan(TOL);
    }
  });

  // Random weights with hidden size 32 are the worst case for 4-bit blocks of 32 (measured: q8 0.026, q4 0.53
  // from the float32 scores), so q4 is held to the one label with a clear margin.
  it.each([
    ['q8', 0.05, [0, 1, 2]],
    ['q4', 0.75, [0]],
  ] as const)('%s runs the head too, near the float32 scores', async (dtype, tolerance, rowsWithSameLabel) => {
    const quantized = await GPTNeoForSequenceClassification.from_pretrained(fixture('heads', 'seqcls'), { dtype });
    const { logits } = await quantized.forward({ input_ids: ref.input_ids, attention_mask: ref.attention_mask });
    const difference = maxAbsDiff(logits.data, ref.logits.flat());
    expect(difference).toBeLessThan(tolerance);
    expect(difference).toBeGreaterThan(1e-4);
    for (const b of rowsWithSameLabel) {
      expect(quantized.config.id2label[argmax(logits.data.subarray(b * 3, b * 3 + 3))]).toBe(ref.labels[b]);
    }
    await quantized.dispose();
  });
});

describe('GPTNeoForTokenClassification', () => {
  it('scores every token', async () => {
    const ref = readReference('heads/tokcls');
    const model = await GPTNeoForTokenClassification.from_pretrained(fixture('heads', 'tokcls'));
    const out = await model.forward({ input_ids: ref.input_ids, output_hidden_states: true });
    expect(out.logits.dims).toEqual([2, 9, 5]);
    expect(maxAbsDiff(out.logits.data, ref.logits.flat(2))).toBeLessThan(TOL);
    expect(out.hidden_states).toHaveLength(5);
    await model.dispose();
  });
});

describe('GPTNeoForQuestionAnswering', () => {
  it('gives start and end logits per token', async () => {
    const ref = readReference('heads/qa');
    const model = await GPTNeoForQuestionAnswering.from_pretrained(fixture('heads', 'qa'));
    const { start_logits, end_logits } = await model.forward({ input_ids: ref.input_ids });
    expect(start_logits.dims).toEqual([2, 9]);
    expect(maxAbsDiff(start_logits.data, ref.start_logits.flat())).toBeLessThan(TOL);
    expect(maxAbsDiff(end_logits.data, ref.end_logits.flat())).toBeLessThan(TOL);
    await model.dispose();
  });
});

describe('bad head checkpoints and inputs get clear errors', () => {
  /** A copy of the seqcls fixture with config.json edited. */
  function seqclsWithConfig(edit: (config: Record<string, unknown>) => void): string {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-heads-'));
    copyFileSync(fixture('heads', 'seqcls', 'model.safetensors'), path.join(folder, 'model.safetensors'));
    const config = JSON.parse(readFileSync(fixture('heads', 'seqcls', 'config.json'), 'utf8'));
    edit(config);
    writeFileSync(path.join(folder, 'config.json'), JSON.stringify(config));
    return folder;
  }

  it('a checkpoint without the head tensor', async () => {
    await expect(GPTNeoForSequenceClassification.from_pretrained(fixture('tiny-random'))).rejects.toThrow(
      /missing tensor 'score.weight' \(expected shape \[2, 32\]\): GPTNeoForSequenceClassification reads its head from 'score'/,
    );
    await expect(GPTNeoForQuestionAnswering.from_pretrained(fixture('heads', 'seqcls'))).rejects.toThrow(
      "missing tensor 'qa_outputs.bias' (expected shape [2]): GPTNeoForQuestionAnswering reads its head from 'qa_outputs'",
    );
  });

  it('num_labels (id2label) disagreeing with the head tensor', async () => {
    const folder = seqclsWithConfig((config) => {
      config.id2label = { 0: 'a', 1: 'b', 2: 'c', 3: 'd', 4: 'e' };
      delete config.label2id;
    });
    await expect(GPTNeoForSequenceClassification.from_pretrained(folder)).rejects.toThrow(
      "tensor 'score.weight' has shape [3, 32], expected [5, 32]: GPTNeoForSequenceClassification reads its head from 'score' with num_labels 5 rows (config.json's id2label)",
    );
  });

  it('a batch of several rows without pad_token_id, as in HF; one row is fine', async () => {
    const ref = readReference('heads/seqcls');
    const model = await GPTNeoForSequenceClassification.from_pretrained(seqclsWithConfig((config) => delete config.pad_token_id));
    await expect(model.forward({ input_ids: ref.input_ids })).rejects.toThrow('Cannot handle batch sizes > 1 if no padding token is defined');
    const { logits } = await model.forward({ input_ids: [ref.input_ids[0]] });
    expect(maxAbsDiff(logits.data, ref.logits[0])).toBeLessThan(TOL);
    await model.dispose();
  });

  it('input outside the vocabulary or positions', async () => {
    const model = await GPTNeoModel.from_pretrained(fixture('tiny-random'));
    await expect(model.forward({ input_ids: [[1, 1000]] })).rejects.toThrow('input_ids[0][1] = 1000 is outside the vocabulary (0..999)');
    await expect(model.forward({ input_ids: [[1, 2]], position_ids: [[0, 128]] })).rejects.toThrow('position_ids[0][1] = 128');
    await expect(model.forward({ input_ids: [[1, 2], [3]] })).rejects.toThrow('input_ids rows must all have the same length');
    await model.dispose();
    const classifier = await GPTNeoForSequenceClassification.from_pretrained(fixture('heads', 'seqcls'));
    await expect(classifier.forward({ input_ids: [] })).rejects.toThrow('input_ids must be a non-empty list of token rows');
    await expect(classifier.forward({ input_ids: 'text' as unknown as number[][] })).rejects.toThrow('input_ids must be a non-empty list of token rows');
    await classifier.dispose();
  });
});

describe('labels and architectures from config.json', () => {
  it('reads id2label and label2id, or names num_labels labels LABEL_i as transformers does', () => {
    const config = JSON.parse(readFileSync(fixture('heads', 'seqcls', 'config.json'), 'utf8'));
    expect(parseConfig(config)).toMatchObject({
      num_labels: 3,
      id2label: { 0: 'negative', 1: 'neutral', 2: 'positive' },
      label2id: { negative: 0, neutral: 1, positive: 2 },
      architectures: ['GPTNeoForSequenceClassification'],
    });
    expect(parseConfig({}).id2label).toEqual({ 0: 'LABEL_0', 1: 'LABEL_1' });
    expect(parseConfig({ num_labels: 3 })).toMatchObject({ num_labels: 3, label2id: { LABEL_2: 2 } });
    expect(() => parseConfig({ id2label: { 0: 'a', 2: 'b' } })).toThrow(ConfigError);
    expect(() => parseConfig({ id2label: { 0: 'a', 2: 'b' } })).toThrow("field 'id2label' must be ids 0 .. num_labels - 1");
  });

  it('AutoModel loads the class that architectures names, else the bare model', async () => {
    const cases = [
      ['heads/seqcls', GPTNeoForSequenceClassification],
      ['heads/tokcls', GPTNeoForTokenClassification],
      ['heads/qa', GPTNeoForQuestionAnswering],
      ['tiny-random', GPTNeoForCausalLM],
    ] as const;
    const unnamed = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-heads-'));
    copyFileSync(fixture('tiny-random', 'model.safetensors'), path.join(unnamed, 'model.safetensors'));
    const config = JSON.parse(readFileSync(fixture('tiny-random', 'config.json'), 'utf8'));
    writeFileSync(path.join(unnamed, 'config.json'), JSON.stringify({ ...config, architectures: undefined }));
    for (const [folder, expectedClass] of [...cases.map(([name, c]) => [fixture(name), c] as const), [unnamed, GPTNeoModel] as const]) {
      const model = await AutoModel.from_pretrained(folder);
      expect(model).toBeInstanceOf(expectedClass);
      await model.dispose();
    }
  });
});
