import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { FIXTURES, fixture } from '../helpers/fixtures.js';

export const TINY_RANDOM = fixture('tiny-random');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function readTrainReference(): any {
  return JSON.parse(gunzipSync(readFileSync(fixture('tiny-random', 'train_reference.json.gz'))).toString('utf8'));
}

/** Excerpts of the tiny-trained fixture's validation text (public-domain novels). */
export const TRAIN_TEXT = path.join(FIXTURES, '..', 'train', 'train.txt');
export const VALIDATION_TEXT = path.join(FIXTURES, '..', 'train', 'validation.txt');
