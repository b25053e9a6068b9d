// 4-bit weight x int8 activation matmul for the page (WebAssembly SIMD128), with the semantics of ONNX Runtime's
// com.microsoft MatMulNBits at bits 4, block_size 32, accuracy_level 4, over the weight layout that
// src/convert/quantize.ts's quantizeBlockwise writes:
//   codes       uint8 [N, blocks, 16]: two codes a byte, the even index in the low nibble
//   scales      float32 [N, blocks]
//   zeroPoints  uint8 [N, ceil(blocks / 2)]: two a byte, the even block in the low nibble
// where blocks = K / 32. All pointers are byte offsets into the imported memory; nothing here allocates, so
// several threads may call matmulInt4 at once on one shared memory (on disjoint column ranges of y).
//
// Quantized activations (what quantizeActivations writes at `out`, quantizedActivationBytes(rows, K) bytes),
// one record of rowBytes(K) = 2 K + 8 paddedBlocks bytes per row, paddedBlocks = blocks rounded up to 4:
//   [0, 2 K)                        int16 codes, 64 bytes a block: four i16x8 vectors, vector p (p = 0..3)
//                                   holding in lane j the code of element 4 j + p of the block
//   [2 K, 2 K + 4 paddedBlocks)     float32 scale per block (max|a| / 127; 0 for an all-zero block)
//   [.., + 4 paddedBlocks)          float32 scale * (sum of the block's codes) per block
// The blocks past `blocks` in the padding hold zeros. Read as little-endian int16 lanes, 16 bytes of packed
// weights hold in lane j the codes 4 j .. 4 j + 3 as its four nibbles, so masking and shifting each lane gives
// the weight codes in exactly the activation vectors' order, already widened to 16 bits for
// i32x4.dot_i16x8_s: no byte shuffles and no 8-to-16-bit widening in the inner loop.
//
// Per block the zero point enters through sum((c - z) q) = sum(c q) - z sum(q), once a block rather than once
// a weight, with the activations' scaled code sums precomputed per row.

/** The first byte JavaScript may use: above the module's static data, 16-byte aligned. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~(<usize>15);
}

// @ts-ignore: decorator
@inline
function paddedBlocks(K: i32): i32 {
  return ((K >> 5) + 3) & ~3;
}

// @ts-ignore: decorator
@inline
function rowBytes(K: i32): i32 {
  return (K << 1) + (paddedBlocks(K) << 3);
}

export function quantizedActivationBytes(rows: i32, K: i32): i32 {
  return rows * rowBytes(K);
}

/**
 * Quantizes x (float32 [rows, K]) per row and block of 32 to symmetric int8 codes: scale = max|a| / 127,
 * code = a / scale rounded to nearest (ties to even) and clamped to [-127, 127]. Cheap next to the matmul
 * (K values a row against N K weights), so it stays scalar and plain.
 */
export function quantizeActivations(x: usize, rows: i32, K: i32, out: usize): void {
  const blocks = K >> 5;
  const padded = paddedBlocks(K);
  const stride = <usize>rowBytes(K);
  for (let m = 0; m < rows; m++) {
    const src = x + ((<usize>m * <usize>K) << 2);
    const row = out + <usize>m * stride;
    const scales = row + (<usize>K << 1);
    const sums = scales + (<usize>padded << 2);
    for (let b = 0; b < blocks; b++) {
      const block = src + (<usize>b << 7);
      let max: f32 = 0;
      for (let i = 0; i < 32; i++) max = Mathf.max(max, Mathf.abs(load<f32>(block + (<usize>i << 2))));
      const scale: f32 = max / 127;
      const codes = row + (<usize>b << 6);
      let sum: i32 = 0;
      for (let i = 0; i < 32; i++) {
        let code: i32 = 0;
        if (scale > 0) {
          const q = nearest<f32>(load<f32>(block + (<usize>i << 2)) / scale);
          code = <i32>Mathf.min(127, Mathf.max(-127, q));
        }
        sum += code;
        // Element i = 4 j + p goes to vector p, lane j.
        store<i16>(codes + (<usize>(i & 3) << 4) + (<usize>(i >> 2) << 1), <i16>code);
      }
      store<f32>(scales + (<usize>b << 2), scale);
      store<f32>(sums + (<usize>b << 2), scale * <f32>sum);
    }
    for (let b = blocks; b < padded; b++) {
      store<f32>(scales + (<usize>b << 2), 0);
      store<f32>(sums + (<usize>b << 2), 0);
    }
  }
}

// The integer dot product of one weight block (16 packed bytes w) with one activation block: the four nibbles
// of each 16-bit lane against the four activation vectors, i32 partial sums in four lanes.
// @ts-ignore: decorator
@inline
function dotBlock(w: v128, act: usize, mask: v128): v128 {
  const c0 = v128.and(w, mask);
  const c1 = v128.and(i16x8.shr_u(w, 4), mask);
  const c2 = v128.and(i16x8.shr_u(w, 8), mask);
  const c3 = i16x8.shr_u(w, 12);
  const s01 = i32x4.add(i32x4.dot_i16x8_s(c0, v128.load(act)), i32x4.dot_i16x8_s(c1, v128.load(act, 16)));
  const s23 = i32x4.add(i32x4.dot_i16x8_s(c2, v128.load(act, 32)), i32x4.dot_i16x8_s(c3, v128.load(act, 48)));
  return i32x4.add(s01, s23);
}

// Four blocks' partial-sum vectors to one vector of their four totals (lane b = block b), so that scales, zero
// points and the float accumulation run four blocks a vector op.
// @ts-ignore: decorator
@inline
function totals(p0: v128, p1: v128, p2: v128, p3: v128): v128 {
  const a = i32x4.add(v128.shuffle<i32>(p0, p1, 0, 2, 4, 6), v128.shuffle<i32>(p0, p1, 1, 3, 5, 7));
  const b = i32x4.add(v128.shuffle<i32>(p2, p3, 0, 2, 4, 6), v128.shuffle<i32>(p2, p3, 1, 3, 5, 7));
  return i32x4.add(v128.shuffle<i32>(a, b, 0, 2, 4, 6), v128.shuffle<i32>(a, b, 1, 3, 5, 7));
}

// @ts-ignore: decorator
@inline
function horizontalSum(v: v128): f32 {
  const pairs = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(pairs, 0) + f32x4.extract_lane(pairs, 1);
}

// @ts-ignore: decorator
@inline
function zeroPoint(zeroPoints: usize, b: i32): f32 {
  return <f32>((load<u8>(zeroPoints + (<usize>b >> 1)) >> (<u32>(b & 1) << 2)) & 15);
}

/** Column n's dot product with one row of quantized activations, without bias. */
function column1(n: i32, act: usize, K: i32, codes: usize, scales: usize, zeroPoints: usize): f32 {
  const blocks = K >> 5;
  const groups = blocks >> 2;
  const mask = i16x8.splat(15);
  const zeroMask = i32x4(0xf, 0xf0, 0xf00, 0xf000);
  const zeroUnit = f32x4(1, 1.0 / 16, 1.0 / 256, 1.0 / 4096);
  const w = codes + <usize>n * (<usize>blocks << 4);
  const ws = scales + ((<usize>n * <usize>blocks) << 2);
  const zp = zeroPoints + <usize>n * <usize>((blocks + 1) >> 1);
  const as = act + (<usize>K << 1);
  const asq = as + (<usize>paddedBlocks(K) << 2);
  let acc = f32x4.splat(0);
  for (let g = 0; g < groups; g++) {
    const wg = w + (<usize>g << 6);
    const ag = act + (<usize>g << 8);
    const p0 = dotBlock(v128.load(wg), ag, mask);
    const p1 = dotBlock(v128.load(wg, 16), ag + 64, mask);
    const p2 = dotBlock(v128.load(wg, 32), ag + 128, mask);
    const p3 = dotBlock(v128.load(wg, 48), ag + 192, mask);
    const dots = f32x4.convert_i32x4_s(totals(p0, p1, p2, p3));
    const z = f32x4.mul(f32x4.convert_i32x4_u(v128.and(i32x4.splat(<i32>load<u16>(zp + (<usize>g << 1))), zeroMask)), zeroUnit);
    const off = <usize>g << 4;
    const t = f32x4.sub(f32x4.mul(dots, v128.load(as + off)), f32x4.mul(z, v128.load(asq + off)));
    acc = f32x4.add(acc, f32x4.mul(t, v128.load(ws + off)));
  }
  let sum = horizontalSum(acc);
  for (let b = groups << 2; b < blocks; b++) {
    const p = dotBlock(v128.load(w + (<usize>b << 4)), act + (<usize>b << 6), mask);
    const dot = <f32>(i32x4.extract_lane(p, 0) + i32x4.extract_lane(p, 1) + i32x4.extract_lane(p, 2) + i32x4.extract_lane(p, 3));
    const off = <usize>b << 2;
    sum += load<f32>(ws + off) * (dot * load<f32>(as + off) - zeroPoint(zp, b) * load<f32>(asq + off));
  }
  return sum;
}

/**
 * y[m, n] = bias[n] + sum over blocks b of scales[n, b] ascale[m, b] sum_i (code[n, b, i] - zp[n, b]) acode[m, b, i]
 * for n in [nStart, nEnd) and every row m; y is float32 [rows, N], bias float32 [N] or 0 for none, xq what
 * quantizeActivations wrote for these rows. K must be a multiple of 32.
 */
export function matmulInt4(
  y: usize,
  xq: usize,
  rows: i32,
  K: i32,
  codes: usize,
  scales: usize,
  zeroPoints: usize,
  bias: usize,
  N: i32,
  nStart: i32,
  nEnd: i32,
): void {
  const stride = <usize>rowBytes(K);
  for (let n = nStart; n < nEnd; n++) {
    const b: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
    for (let m = 0; m < rows; m++) {
      const out = y + ((<usize>m * <usize>N + <usize>n) << 2);
      store<f32>(out, column1(n, xq + <usize>m * stride, K, codes, scales, zeroPoints) + b);
    }
  }
}
