/**
 * Partial ranking of a vocabulary-sized array. Truncation warpers only need the head of the order, and
 * a full sort of 50k doubles costs ~10 ms per row and step, more than a small model's forward pass.
 */

/** The k-th largest value (k = 1 is the maximum), by quickselect: O(n) on average. Values must not be NaN. */
export function kthLargest(values: ArrayLike<number>, k: number): number {
  if (!(k >= 1 && k <= values.length)) throw new RangeError(`k=${k} outside 1..${values.length}`);
  const a = Float64Array.from(values);
  const target = k - 1;
  let low = 0;
  let high = a.length - 1;
  while (low < high) {
    const pivot = medianOfThree(a[low], a[(low + high) >>> 1], a[high]);
    let i = low;
    let j = high;
    // Hoare partition into descending order: [low, j] >= pivot >= [i, high].
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const swap = a[i];
        a[i] = a[j];
        a[j] = swap;
        i++;
        j--;
      }
    }
    if (target <= j) high = j;
    else if (target >= i) low = i;
    else return a[target];
  }
  return a[target];
}

/** Indices of the m largest values, largest first; ties in index order. */
export function largestIndices(values: ArrayLike<number>, m: number): number[] {
  const count = Math.min(m, values.length);
  if (count <= 0) return [];
  const threshold = kthLargest(values, count);
  const above: number[] = [];
  const tied: number[] = [];
  for (let i = 0; i < values.length; i++) {
    if (values[i] > threshold) above.push(i);
    else if (values[i] === threshold) tied.push(i);
  }
  const head = above.concat(tied.slice(0, count - above.length));
  return head.sort((a, b) => values[b] - values[a] || a - b);
}

export interface WeightedThreshold {
  value: number;
  /** Total weight of the entries whose value is strictly below `value`. */
  weightBelow: number;
}

/**
 * The smallest value v such that the entries with value <= v weigh more than `target` (at least
 * `target` when `atLeast`), found by a weighted quickselect in O(n) on average. This is the cut point
 * of nucleus and typical filtering without sorting the vocabulary. Null when the total weight never
 * gets there (only possible through rounding).
 */
export function weightedThreshold(
  values: ArrayLike<number>,
  weights: ArrayLike<number>,
  target: number,
  atLeast: boolean,
): WeightedThreshold | null {
  const reached = (weight: number) => (atLeast ? weight >= target : weight > target);
  const order = new Uint32Array(values.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  const swap = (a: number, b: number) => {
    const kept = order[a];
    order[a] = order[b];
    order[b] = kept;
  };
  // Entries left of the window [low, high) have smaller values and weigh `below` together.
  let low = 0;
  let high = values.length;
  let below = 0;
  while (low < high) {
    const pivot = medianOfThree(values[order[low]], values[order[(low + high) >>> 1]], values[order[high - 1]]);
    // Three-way partition of the window: [low, less) < pivot, [less, greater) == pivot, [greater, high) > pivot.
    let less = low;
    let greater = high;
    let lessWeight = 0;
    let equalWeight = 0;
    for (let i = low; i < greater; ) {
      const value = values[order[i]];
      if (value < pivot) {
        lessWeight += weights[order[i]];
        swap(less++, i++);
      } else if (value > pivot) {
        swap(i, --greater);
      } else {
        equalWeight += weights[order[i]];
        i++;
      }
    }
    if (reached(below + lessWeight)) {
      high = less;
    } else if (reached(below + lessWeight + equalWeight)) {
      return { value: pivot, weightBelow: below + lessWeight };
    } else {
      below += lessWeight + equalWeight;
      low = greater;
    }
  }
  return null;
}

function medianOfThree(a: number, b: number, c: number): number {
  if (a < b) return b < c ? b : a < c ? c : a;
  return a < c ? a : b < c ? c : b;
}
