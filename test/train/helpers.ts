import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fixture } from '../helpers/fixtures.js';

export const TINY_RANDOM = fixture('tiny-random');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function readTrainReference(): any {
  return JSON.parse(gunzipSync(readFileSync(fixture('tiny-random', 'train_reference.json.gz'))).toString('utf8'));
}
