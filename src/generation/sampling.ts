/** Seeded randomness and the numeric helpers that turn scores into choices. */

/** Uniform floats in [0, 1). */
export interface RandomSource {
  nextFloat(): number;
}

/**
 * xoshiro128** (Blackman & Vigna): small state, passes BigCrush, and fully reproducible across
 * platforms, unlike Math.random which cannot be seeded.
 */
export class Xoshiro128 implements RandomSource {
  private readonly state: Uint32Array;

  constructor(seedWords: Uint32Array) {
    if (seedWords.length !== 4 || seedWords.every((word) => word === 0)) {
      throw new Error('xoshiro128** needs four seed words, not all zero');
    }
    this.state = Uint32Array.from(seedWords);
  }

  nextUint32(): number {
    const s = this.state;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** 53 random bits, so every double in [0, 1) on the 2^-53 grid is reachable. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Expands a seed into xoshiro state with splitmix64, the seeding its authors recommend: nearby seeds
 * (0, 1, 2, ...) give unrelated streams. Without a seed the state comes from the OS (Web Crypto, in Node and browsers).
 */
export function createRandom(seed?: number): Xoshiro128 {
  const words = new Uint32Array(4);
  if (seed === undefined) {
    do globalThis.crypto.getRandomValues(words);
    while (words.every((word) => word === 0));
    return new Xoshiro128(words);
  }
  let z = BigInt.asUintN(64, BigInt(seed));
  for (let i = 0; i < 4; i += 2) {
    z = BigInt.asUintN(64, z + 0x9e3779b97f4a7c15n);
    let mixed = z;
    mixed = BigInt.asUintN(64, (mixed ^ (mixed >> 30n)) * 0xbf58476d1ce4e5b9n);
    mixed = BigInt.asUintN(64, (mixed ^ (mixed >> 27n)) * 0x94d049bb133111ebn);
    mixed ^= mixed >> 31n;
    words[i] = Number(mixed & 0xffffffffn);
    words[i + 1] = Number(mixed >> 32n);
  }
  // splitmix64 never yields two zero outputs in a row, so the state is valid.
  return new Xoshiro128(words);
}

export function softmax(scores: ArrayLike<number>): Float64Array {
  const probs = new Float64Array(scores.length);
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) max = Math.max(max, scores[i]);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    const e = Math.exp(scores[i] - max);
    probs[i] = e;
    sum += e;
  }
  for (let i = 0; i < probs.length; i++) probs[i] /= sum;
  return probs;
}

export function logSoftmax(scores: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < scores.length; i++) max = Math.max(max, scores[i]);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += Math.exp(scores[i] - max);
  const logNormalizer = max + Math.log(sum);
  const result = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) result[i] = scores[i] - logNormalizer;
  return result;
}

/** Index of the largest score; the first one on ties, like torch.argmax. */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return best;
}

/** One draw from a categorical distribution; weights need not sum to 1 and zero weights are never drawn. */
export function sampleIndex(weights: ArrayLike<number>, random: RandomSource): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  if (!(total > 0)) throw new Error('cannot sample: no token has a positive probability');
  const target = random.nextFloat() * total;
  let cumulative = 0;
  let lastPositive = -1;
  for (let i = 0; i < weights.length; i++) {
    const weight = weights[i];
    if (weight <= 0) continue;
    cumulative += weight;
    lastPositive = i;
    if (cumulative > target) return i;
  }
  // Rounding can leave the running sum a hair below target at the very end.
  return lastPositive;
}

/**
 * Up to `count` distinct draws, each from the weights left after removing the earlier draws, the way
 * torch.multinomial samples without replacement. Stops early when no positive weight is left.
 */
export function sampleWithoutReplacement(weights: ArrayLike<number>, count: number, random: RandomSource): number[] {
  const remaining = Float64Array.from(weights);
  const drawn: number[] = [];
  let positive = 0;
  for (let i = 0; i < remaining.length; i++) if (remaining[i] > 0) positive++;
  while (drawn.length < count && positive > 0) {
    const index = sampleIndex(remaining, random);
    drawn.push(index);
    remaining[index] = 0;
    positive--;
  }
  return drawn;
}
