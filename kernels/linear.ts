// 4-bit weight x int8 activation matmul for the page (WebAssembly SIMD128), with the semantics of ONNX Runtime's
// com.microsoft MatMulNBits at bits 4, block_size 32, accuracy_level 4, over the weight layout that
// src/convert/quantize.ts's quantizeBlockwise writes:
//   codes       uint8 [N, blocks, 16]: two codes a byte, the even index in the low nibble
//   scales      float32 [N, blocks]
//   zeroPoints  uint8 [N, ceil(blocks / 2)]: two a byte, the even block in the low nibble
// where blocks = K / 32. All pointers are byte offsets into the imported memory, arrays little-endian and
// row-major. Nothing here allocates or keeps state, so several threads may call matmulInt4 at once on one
// shared memory, each on its own column range of y.
//
// Read as little-endian int16 lanes, 16 bytes of packed weights hold in lane j the codes 4 j .. 4 j + 3 as its
// four nibbles. Masking a lane with 0x000f, 0x00f0 and 0x0f00 and shifting it right by 12 gives codes
// 4 j + p times 1, 16, 256 and 1, already 16 bits wide for i32x4.dot_i16x8_s: four operations unpack a block,
// with no byte shuffles and no widening. The activations are stored to match: int16, permuted so that vector
// p holds element 4 j + p in lane j, and multiplied by 256, 16, 1, 256 (p = 0..3), so that every product
// carries the same factor 256. A block's sum stays below 256 * 32 * 15 * 127 < 2^24, so it converts to float32
// exactly.
//
// Quantized activations (what quantizeActivations writes, quantizedActivationBytes(rows, K) bytes), one record
// of 2 K + 8 paddedBlocks bytes per row, paddedBlocks = blocks rounded up to a multiple of 4:
//   [0, 2 K)                        int16 codes as above, 64 bytes a block (four i16x8 vectors)
//   [2 K, 2 K + 4 paddedBlocks)     float32 scale a block: max|a| / 127, 0 for an all-zero block
//   [.., + 4 paddedBlocks)          float32 256 * scale * (sum of the block's codes) a block
// with zeros in the padding. Records are 16-byte multiples; a 16-byte aligned `out` keeps every vector load
// aligned (not required, but faster on some CPUs).
//
// The zero point enters through sum((c - z) q) = sum(c q) - z sum(q), once a block rather than once a weight.
// Blocks go four at a time: their four sums are gathered into one vector, so that weight scales, activation
// scales, zero points and the float accumulation cost one vector operation per four blocks.

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

/** Bytes of quantized activations for `rows` rows of K values (K a multiple of 32). */
export function quantizedActivationBytes(rows: i32, K: i32): i32 {
  return rows * rowBytes(K);
}

/**
 * Quantizes x (float32 [rows, K]) per row and block of 32 to symmetric int8 codes: scale = max|a| / 127,
 * code = a / scale rounded to nearest (ties to even), clamped to [-127, 127]; writes them at `out` in the
 * layout above. Cheap next to the matmul (K values a row against N K weights), so it stays scalar and plain.
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
        if (scale > 0) code = <i32>Mathf.min(127, Mathf.max(-127, nearest<f32>(load<f32>(block + (<usize>i << 2)) / scale)));
        sum += code;
        // Element i = 4 j + p: vector p, lane j, times 256, 16, 1, 256.
        const p = i & 3;
        const shift = p == 1 ? 4 : p == 2 ? 0 : 8;
        store<i16>(codes + (<usize>p << 4) + (<usize>(i >> 2) << 1), <i16>(code << shift));
      }
      store<f32>(scales + (<usize>b << 2), scale);
      store<f32>(sums + (<usize>b << 2), scale * <f32>sum * 256);
    }
    for (let b = blocks; b < padded; b++) {
      store<f32>(scales + (<usize>b << 2), 0);
      store<f32>(sums + (<usize>b << 2), 0);
    }
  }
}

// One weight block (16 packed bytes) against one activation block: i32 partial sums in four lanes.
// @ts-ignore: decorator
@inline
function dotBlock(w: v128, act: usize, low: v128, mid: v128, high: v128): v128 {
  const d0 = i32x4.dot_i16x8_s(v128.and(w, low), v128.load(act));
  const d1 = i32x4.dot_i16x8_s(v128.and(w, mid), v128.load(act, 16));
  const d2 = i32x4.dot_i16x8_s(v128.and(w, high), v128.load(act, 32));
  const d3 = i32x4.dot_i16x8_s(i16x8.shr_u(w, 12), v128.load(act, 48));
  return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
}

// The same with the weight block already unpacked (c0 .. c3), for two rows sharing one unpacking.
// @ts-ignore: decorator
@inline
function dotUnpacked(c0: v128, c1: v128, c2: v128, c3: v128, act: usize): v128 {
  const d0 = i32x4.dot_i16x8_s(c0, v128.load(act));
  const d1 = i32x4.dot_i16x8_s(c1, v128.load(act, 16));
  const d2 = i32x4.dot_i16x8_s(c2, v128.load(act, 32));
  const d3 = i32x4.dot_i16x8_s(c3, v128.load(act, 48));
  return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
}

// Sums of neighbouring lanes: [a0 + a1, a2 + a3, b0 + b1, b2 + b3].
// @ts-ignore: decorator
@inline
function pairSums(a: v128, b: v128): v128 {
  return i32x4.add(v128.shuffle<i32>(a, b, 0, 2, 4, 6), v128.shuffle<i32>(a, b, 1, 3, 5, 7));
}

// Four blocks' partial-sum vectors to one vector of their totals, lane b for block b.
// @ts-ignore: decorator
@inline
function totals(p0: v128, p1: v128, p2: v128, p3: v128): v128 {
  return pairSums(pairSums(p0, p1), pairSums(p2, p3));
}

// @ts-ignore: decorator
@inline
function laneSum(p: v128): f32 {
  return <f32>(i32x4.extract_lane(p, 0) + i32x4.extract_lane(p, 1) + i32x4.extract_lane(p, 2) + i32x4.extract_lane(p, 3));
}

// @ts-ignore: decorator
@inline
function horizontalSum(v: v128): f32 {
  const pairs = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(pairs, 0) + f32x4.extract_lane(pairs, 1);
}

// The zero points of blocks 4 g .. 4 g + 3 (two bytes) as floats: the masks leave block b's times 16^b, which
// the multiplication undoes exactly.
// @ts-ignore: decorator
@inline
function zeroPoints4(zp: usize, g: i32, zeroMask: v128, zeroUnit: v128): v128 {
  const masked = v128.and(i32x4.splat(<i32>load<u16>(zp + (<usize>g << 1))), zeroMask);
  return f32x4.mul(f32x4.convert_i32x4_s(masked), zeroUnit);
}

// Loaded from static data rather than written as constants: V8 rebuilt constant vectors inside the loop
// (eight instructions a group of blocks) but keeps a loaded value in a register.
const ZERO_MASK = memory.data<i32>([0xf, 0xf0, 0xf00, 0xf000], 16);
const ZERO_UNIT = memory.data<f32>([1, 1.0 / 16, 1.0 / 256, 1.0 / 4096], 16);

// @ts-ignore: decorator
@inline
function zeroPoint(zp: usize, b: i32): f32 {
  return <f32>((load<u8>(zp + (<usize>b >> 1)) >> (<u32>(b & 1) << 2)) & 15);
}

// The four blocks of a group go through a loop that carries their partial sums from one iteration to the next,
// rather than being written out one after another: V8 issues a basic block's loads first, and sixteen
// activation loads at once spilled registers (a quarter slower in Node).

/** Column n against one row of quantized activations, times 256, without bias. */
function column1(n: i32, act: usize, K: i32, codes: usize, scales: usize, zeroPoints: usize): f32 {
  const blocks = K >> 5;
  const groups = blocks >> 2;
  const low = i16x8.splat(0xf);
  const mid = i16x8.splat(0xf0);
  const high = i16x8.splat(0xf00);
  const zero = i32x4.splat(0);
  const zeroMask = v128.load(ZERO_MASK);
  const zeroUnit = v128.load(ZERO_UNIT);
  const w = codes + <usize>n * (<usize>blocks << 4);
  const ws = scales + ((<usize>n * <usize>blocks) << 2);
  const zp = zeroPoints + <usize>n * <usize>((blocks + 1) >> 1);
  const as = act + (<usize>K << 1);
  const sums = as + (<usize>paddedBlocks(K) << 2);
  let acc = f32x4.splat(0);
  for (let g = 0; g < groups; g++) {
    const wg = w + (<usize>g << 6);
    const ag = act + (<usize>g << 8);
    let p0 = zero;
    let p1 = zero;
    let p2 = zero;
    let p3 = zero;
    for (let j = 0; j < 4; j++) {
      const p = dotBlock(v128.load(wg + (<usize>j << 4)), ag + (<usize>j << 6), low, mid, high);
      p0 = p1;
      p1 = p2;
      p2 = p3;
      p3 = p;
    }
    const off = <usize>g << 4;
    const dots = f32x4.convert_i32x4_s(totals(p0, p1, p2, p3));
    const t = f32x4.sub(f32x4.mul(dots, v128.load(as + off)), f32x4.mul(zeroPoints4(zp, g, zeroMask, zeroUnit), v128.load(sums + off)));
    acc = f32x4.add(acc, f32x4.mul(t, v128.load(ws + off)));
  }
  let sum = horizontalSum(acc);
  for (let b = groups << 2; b < blocks; b++) {
    const p = dotBlock(v128.load(w + (<usize>b << 4)), act + (<usize>b << 6), low, mid, high);
    const off = <usize>b << 2;
    sum += load<f32>(ws + off) * (laneSum(p) * load<f32>(as + off) - zeroPoint(zp, b) * load<f32>(sums + off));
  }
  return sum;
}

/**
 * Column n against two rows, unpacking each weight block once for both; stores y0 and y1 with bias. Each block's
 * two partial-sum vectors are folded into one right away (row 0's halves in lanes 0-1, row 1's in 2-3), so the
 * loop carries four vectors, as column1 does, rather than eight, which V8 spilled.
 */
function column2(n: i32, act0: usize, act1: usize, K: i32, codes: usize, scales: usize, zeroPoints: usize, bias: f32, y0: usize, y1: usize): void {
  const blocks = K >> 5;
  const groups = blocks >> 2;
  const low = i16x8.splat(0xf);
  const mid = i16x8.splat(0xf0);
  const high = i16x8.splat(0xf00);
  const zero = i32x4.splat(0);
  const zeroMask = v128.load(ZERO_MASK);
  const zeroUnit = v128.load(ZERO_UNIT);
  const w = codes + <usize>n * (<usize>blocks << 4);
  const ws = scales + ((<usize>n * <usize>blocks) << 2);
  const zp = zeroPoints + <usize>n * <usize>((blocks + 1) >> 1);
  const as0 = act0 + (<usize>K << 1);
  const sums0 = as0 + (<usize>paddedBlocks(K) << 2);
  const as1 = act1 + (<usize>K << 1);
  const sums1 = as1 + (<usize>paddedBlocks(K) << 2);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  for (let g = 0; g < groups; g++) {
    const wg = w + (<usize>g << 6);
    const a0 = act0 + (<usize>g << 8);
    const a1 = act1 + (<usize>g << 8);
    let h0 = zero;
    let h1 = zero;
    let h2 = zero;
    let h3 = zero;
    for (let j = 0; j < 4; j++) {
      const v = v128.load(wg + (<usize>j << 4));
      const c0 = v128.and(v, low);
      const c1 = v128.and(v, mid);
      const c2 = v128.and(v, high);
      const c3 = i16x8.shr_u(v, 12);
      const q0 = dotUnpacked(c0, c1, c2, c3, a0 + (<usize>j << 6));
      const q1 = dotUnpacked(c0, c1, c2, c3, a1 + (<usize>j << 6));
      h0 = h1;
      h1 = h2;
      h2 = h3;
      h3 = pairSums(q0, q1);
    }
    const off = <usize>g << 4;
    const z = zeroPoints4(zp, g, zeroMask, zeroUnit);
    const scale = v128.load(ws + off);
    // Lanes: row 0 and row 1 of block 0 and 1 in u, of blocks 2 and 3 in t.
    const u = pairSums(h0, h1);
    const t = pairSums(h2, h3);
    const dots0 = f32x4.convert_i32x4_s(v128.shuffle<i32>(u, t, 0, 2, 4, 6));
    const dots1 = f32x4.convert_i32x4_s(v128.shuffle<i32>(u, t, 1, 3, 5, 7));
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.sub(f32x4.mul(dots0, v128.load(as0 + off)), f32x4.mul(z, v128.load(sums0 + off))), scale));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.sub(f32x4.mul(dots1, v128.load(as1 + off)), f32x4.mul(z, v128.load(sums1 + off))), scale));
  }
  let sum0 = horizontalSum(acc0);
  let sum1 = horizontalSum(acc1);
  for (let b = groups << 2; b < blocks; b++) {
    const v = v128.load(w + (<usize>b << 4));
    const c0 = v128.and(v, low);
    const c1 = v128.and(v, mid);
    const c2 = v128.and(v, high);
    const c3 = i16x8.shr_u(v, 12);
    const p0 = dotUnpacked(c0, c1, c2, c3, act0 + (<usize>b << 6));
    const p1 = dotUnpacked(c0, c1, c2, c3, act1 + (<usize>b << 6));
    const off = <usize>b << 2;
    const scale = load<f32>(ws + off);
    const z = zeroPoint(zp, b);
    sum0 += scale * (laneSum(p0) * load<f32>(as0 + off) - z * load<f32>(sums0 + off));
    sum1 += scale * (laneSum(p1) * load<f32>(as1 + off) - z * load<f32>(sums1 + off));
  }
  store<f32>(y0, sum0 * (1.0 / 256) + bias);
  store<f32>(y1, sum1 * (1.0 / 256) + bias);
}

/**
 * y[m, n] = bias[n] + sum over blocks b of scales[n, b] ascale[m, b] sum_i (code[n, b, i] - zp[n, b]) acode[m, b, i]
 * for the columns n in [nStart, nEnd) and every row m; y is float32 [rows, N], bias float32 [N] or 0 for none,
 * xq what quantizeActivations wrote for these rows. K must be a multiple of 32 and 0 <= nStart <= nEnd <= N.
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
  const yStride = <usize>N << 2;
  // Columns go in tiles of about 16 KB of packed weights, which stay in the first-level cache while every pair
  // of rows passes over them: a prompt reads its weights from memory once. Rows go in pairs that share each
  // block's unpacking.
  const tile = max(1, 32768 / K);
  for (let t = nStart; t < nEnd; t += tile) {
    const tEnd = min(nEnd, t + tile);
    let m = 0;
    for (; m + 1 < rows; m += 2) {
      const act = xq + <usize>m * stride;
      const out = y + <usize>m * yStride;
      for (let n = t; n < tEnd; n++) {
        const o = out + (<usize>n << 2);
        const b: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
        column2(n, act, act + stride, K, codes, scales, zeroPoints, b, o, o + yStride);
      }
    }
    if (m < rows) {
      const act = xq + <usize>m * stride;
      const out = y + <usize>m * yStride;
      for (let n = t; n < tEnd; n++) {
        const b: f32 = bias ? load<f32>(bias + (<usize>n << 2)) : 0;
        store<f32>(out + (<usize>n << 2), column1(n, act, K, codes, scales, zeroPoints) * (1.0 / 256) + b);
      }
    }
  }
}
