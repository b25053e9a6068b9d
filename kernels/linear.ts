// The page's own linear-layer products (WebAssembly SIMD128): the 4-bit one of the q4 format (matmulInt4, first)
// and the int8 one of q8 (matmulInt8, below). All pointers are byte offsets into the imported memory, arrays
// little-endian and row-major. Nothing here allocates or keeps state, so several threads may call a product at
// once on one shared memory, each on its own column range of y.
//
// 4-bit weight x int8 activation matmul, with the semantics of ONNX Runtime's com.microsoft MatMulNBits at bits 4,
// block_size 32, accuracy_level 4, over the weight layout that src/convert/quantize.ts's quantizeBlockwise writes:
//   codes       uint8 [N, blocks, 16]: two codes a byte, the even index in the low nibble
//   scales      float32 [N, blocks]
//   zeroPoints  uint8 [N, ceil(blocks / 2)]: two a byte, the even block in the low nibble
// where blocks = K / 32.
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

// ---------------------------------------------------------------------------------------------------------------
// int8 weight x uint8 activation matmul, with the semantics of ONNX Runtime's com.microsoft MatMulIntegerToFloat
// in the form src/convert/parameters.ts's int8Linear writes (no zero points, no bias):
//   y[m, n] = f32(sum_k A[m, k] B[k, n]) * (aScale * bScales[n])
// with A uint8 [rows, K] (the per-row QuantizeLinear output, as ONNX Runtime hands it), B int8 [K, N] (the
// transposed nn.Linear weight as stored) and the sum exact in i32. K must be a multiple of 16 and at most
// 65536, so that 255 * 128 * K stays below 2^31; N is free.
//
// Packed weights (what packInt8 writes, int8PackedBytes(K, N) bytes): columns in groups of four, the last group
// padded with zero columns; a group's K / 16 chunks in order, each 64 bytes: for its columns j = 0..3, the 16
// codes B[16 c .. 16 c + 15, 4 g + j]. A group is 4 K contiguous bytes, one stream for the loop that walks it.
//
// Read as int16 lanes, 16 bytes of one column's codes hold codes 2 i and 2 i + 1 in lane i, low and high byte.
// Shifting the lanes left by 8 gives 256 times the even codes, masking them with 0xff00 256 times the odd ones,
// both sign-correct int16s for i32x4.dot_i16x8_s: two operations unpack 16 codes, one fewer than widening with
// extend_low and extend_high takes on x64 (with which one row took a fifth longer in V8).
// The activations are stored to match: int16, per chunk of 16, the eight even elements and then the eight odd
// ones (prepareInt8Activations). Every product then carries a factor 256, which the accumulation removes with an
// exact arithmetic shift every 64 chunks, before 64 * 4 * 256 * 128 * 255 < 2^31 can overflow.
//
// Prepared activations (prepareInt8Activations, int8ActivationBytes(rows, K) = 2 rows K bytes): int16 [rows, K],
// each row's chunk c as [A[16 c], A[16 c + 2], .., A[16 c + 14], A[16 c + 1], A[16 c + 3], .., A[16 c + 15]].
//
// One row goes four columns at a time, sharing each chunk's activation loads; rows go four at a time, one column
// at a time, sharing each unpacked chunk of weights, over tiles of columns whose weights (16 KB) stay in the
// first-level cache while every row passes over them. Where measured (x64, V8), one row from weights in memory
// ran at the speed of a plain read of them, and many rows about 15% faster a product than one row from cache.

// @ts-ignore: decorator
@inline
function columnGroups(N: i32): i32 {
  return (N + 3) >> 2;
}

/** Bytes that packInt8 writes for int8 weights [K, N] (K a multiple of 16). */
export function int8PackedBytes(K: i32, N: i32): i32 {
  return columnGroups(N) * (K << 2);
}

/**
 * Repacks b (int8 [K, N], row-major: MatMulIntegerToFloat's B as stored) into `out` (int8PackedBytes(K, N)
 * bytes, best 16-byte aligned) in the layout above. Once a node at load; the 4 x 16 transposes are vector
 * shuffles, since a 1.3B model's weights are a billion bytes.
 */
export function packInt8(b: usize, K: i32, N: i32, out: usize): void {
  const full = N >> 2;
  const chunks = K >> 4;
  const rowBytes = <usize>N;
  // Sixteen rows of b at a time, read along: each 64 bytes written fill one cache line of out.
  for (let c = 0; c < chunks; c++) {
    for (let g = 0; g < full; g++) {
      const group = out + <usize>g * (<usize>K << 2);
      // Rows k0 .. k0 + 15, four bytes (the group's columns) each: vector v holds rows 4 v .. 4 v + 3.
      const src = b + <usize>(c << 4) * rowBytes + (<usize>g << 2);
      const v0 = rows4(src, rowBytes);
      const v1 = rows4(src + (rowBytes << 2), rowBytes);
      const v2 = rows4(src + (rowBytes << 3), rowBytes);
      const v3 = rows4(src + rowBytes * 12, rowBytes);
      // Columns 0 and 1 (rows 0..7 of each), columns 2 and 3, from rows 0..7 and from rows 8..15.
      const t0 = i8x16.shuffle(v0, v1, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
      const t1 = i8x16.shuffle(v0, v1, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
      const t2 = i8x16.shuffle(v2, v3, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
      const t3 = i8x16.shuffle(v2, v3, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
      const dst = group + (<usize>c << 6);
      v128.store(dst, i64x2.shuffle(t0, t2, 0, 2));
      v128.store(dst, i64x2.shuffle(t0, t2, 1, 3), 16);
      v128.store(dst, i64x2.shuffle(t1, t3, 0, 2), 32);
      v128.store(dst, i64x2.shuffle(t1, t3, 1, 3), 48);
    }
  }
  if (full == columnGroups(N)) return;
  // The last, partial group byte by byte, its missing columns zero.
  const group = out + <usize>full * (<usize>K << 2);
  for (let c = 0; c < chunks; c++) {
    for (let j = 0; j < 4; j++) {
      const n = (full << 2) + j;
      const dst = group + (<usize>c << 6) + (<usize>j << 4);
      for (let i = 0; i < 16; i++) {
        store<i8>(dst + <usize>i, n < N ? load<i8>(b + <usize>((c << 4) + i) * rowBytes + <usize>n) : 0);
      }
    }
  }
}

// Four rows' four bytes at p, p + stride, p + 2 stride, p + 3 stride as one vector.
// @ts-ignore: decorator
@inline
function rows4(p: usize, stride: usize): v128 {
  let v = v128.load32_zero(p);
  v = v128.load32_lane(p + stride, v, 1);
  v = v128.load32_lane(p + (stride << 1), v, 2);
  return v128.load32_lane(p + stride * 3, v, 3);
}

/** Bytes of prepared activations for `rows` rows of K values (K a multiple of 16). */
export function int8ActivationBytes(rows: i32, K: i32): i32 {
  return rows * (K << 1);
}

/**
 * Widens a (uint8 [rows, K], as ONNX Runtime hands MatMulIntegerToFloat's A) to int16 in the order above, into
 * `out` (int8ActivationBytes(rows, K) bytes, best 16-byte aligned). K values a row against N K weights: cheap.
 */
export function prepareInt8Activations(a: usize, rows: i32, K: i32, out: usize): void {
  const count = <usize>rows * <usize>K;
  const low = i16x8.splat(0xff);
  for (let i: usize = 0; i < count; i += 16) {
    const v = v128.load(a + i);
    v128.store(out + (i << 1), v128.and(v, low));
    v128.store(out + (i << 1), i16x8.shr_u(v, 8), 16);
  }
}

// Loaded from static data rather than written as a constant, which V8 rebuilt inside loops (see ZERO_MASK).
const ODD_BYTES = memory.data<i16>([-256, -256, -256, -256, -256, -256, -256, -256], 16);

/** Chunks summed before the factor 256 comes out: 64 * 4 * 256 * 128 * 255 < 2^31. */
// @ts-ignore: decorator
@inline
const FLUSH_CHUNKS = 64;

// One chunk of one column (16 codes as stored) against one row's prepared chunk (even, odd): 256 times the
// partial sums in four lanes.
// @ts-ignore: decorator
@inline
function dotChunk(w: v128, even: v128, odd: v128, oddMask: v128): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.shl(w, 8), even), i32x4.dot_i16x8_s(v128.and(w, oddMask), odd));
}

/** The four columns of the group at w against one row: their sums, lane j for column j. */
function group1(w: usize, act: usize, K: i32): v128 {
  const chunks = K >> 4;
  const oddMask = v128.load(ODD_BYTES);
  let t0 = i32x4.splat(0);
  let t1 = t0;
  let t2 = t0;
  let t3 = t0;
  for (let c0 = 0; c0 < chunks; c0 += FLUSH_CHUNKS) {
    const cEnd = min(chunks, c0 + FLUSH_CHUNKS);
    let s0 = i32x4.splat(0);
    let s1 = s0;
    let s2 = s0;
    let s3 = s0;
    for (let c = c0; c < cEnd; c++) {
      const wc = w + (<usize>c << 6);
      const ac = act + (<usize>c << 5);
      const even = v128.load(ac);
      const odd = v128.load(ac, 16);
      s0 = i32x4.add(s0, dotChunk(v128.load(wc), even, odd, oddMask));
      s1 = i32x4.add(s1, dotChunk(v128.load(wc, 16), even, odd, oddMask));
      s2 = i32x4.add(s2, dotChunk(v128.load(wc, 32), even, odd, oddMask));
      s3 = i32x4.add(s3, dotChunk(v128.load(wc, 48), even, odd, oddMask));
    }
    t0 = i32x4.add(t0, i32x4.shr_s(s0, 8));
    t1 = i32x4.add(t1, i32x4.shr_s(s1, 8));
    t2 = i32x4.add(t2, i32x4.shr_s(s2, 8));
    t3 = i32x4.add(t3, i32x4.shr_s(s3, 8));
  }
  return totals(t0, t1, t2, t3);
}

/** One column at w (its chunks 64 bytes apart) against four rows: lane r for row r. */
function column4(w: usize, act0: usize, act1: usize, act2: usize, act3: usize, K: i32): v128 {
  const chunks = K >> 4;
  const oddMask = v128.load(ODD_BYTES);
  let t0 = i32x4.splat(0);
  let t1 = t0;
  let t2 = t0;
  let t3 = t0;
  for (let c0 = 0; c0 < chunks; c0 += FLUSH_CHUNKS) {
    const cEnd = min(chunks, c0 + FLUSH_CHUNKS);
    let s0 = i32x4.splat(0);
    let s1 = s0;
    let s2 = s0;
    let s3 = s0;
    for (let c = c0; c < cEnd; c++) {
      const v = v128.load(w + (<usize>c << 6));
      const even = i16x8.shl(v, 8);
      const odd = v128.and(v, oddMask);
      const off = <usize>c << 5;
      s0 = i32x4.add(s0, i32x4.add(i32x4.dot_i16x8_s(even, v128.load(act0 + off)), i32x4.dot_i16x8_s(odd, v128.load(act0 + off, 16))));
      s1 = i32x4.add(s1, i32x4.add(i32x4.dot_i16x8_s(even, v128.load(act1 + off)), i32x4.dot_i16x8_s(odd, v128.load(act1 + off, 16))));
      s2 = i32x4.add(s2, i32x4.add(i32x4.dot_i16x8_s(even, v128.load(act2 + off)), i32x4.dot_i16x8_s(odd, v128.load(act2 + off, 16))));
      s3 = i32x4.add(s3, i32x4.add(i32x4.dot_i16x8_s(even, v128.load(act3 + off)), i32x4.dot_i16x8_s(odd, v128.load(act3 + off, 16))));
    }
    t0 = i32x4.add(t0, i32x4.shr_s(s0, 8));
    t1 = i32x4.add(t1, i32x4.shr_s(s1, 8));
    t2 = i32x4.add(t2, i32x4.shr_s(s2, 8));
    t3 = i32x4.add(t3, i32x4.shr_s(s3, 8));
  }
  return totals(t0, t1, t2, t3);
}

// @ts-ignore: decorator
@inline
function lane(v: v128, j: i32): i32 {
  return j == 0 ? i32x4.extract_lane(v, 0) : j == 1 ? i32x4.extract_lane(v, 1) : j == 2 ? i32x4.extract_lane(v, 2) : i32x4.extract_lane(v, 3);
}

/**
 * Stores lane j of `sums`, scaled, to out[n] for the columns n = first + j inside [nStart, nEnd). Groups cut by
 * the range or by N go one column at a time through the same two roundings (the sum to float, then its product
 * with aScale bScales[n]), so that a split of the columns gives the bits of one call; and bScales is never read
 * past N.
 */
// @ts-ignore: decorator
@inline
function storeGroup(out: usize, sums: v128, first: i32, aScale: f32, bScales: usize, nStart: i32, nEnd: i32): void {
  if (first >= nStart && first + 4 <= nEnd) {
    const scale = f32x4.mul(f32x4.splat(aScale), v128.load(bScales + (<usize>first << 2)));
    v128.store(out + (<usize>first << 2), f32x4.mul(f32x4.convert_i32x4_s(sums), scale));
    return;
  }
  for (let j = 0; j < 4; j++) {
    const n = first + j;
    if (n >= nStart && n < nEnd) store<f32>(out + (<usize>n << 2), <f32>lane(sums, j) * (aScale * load<f32>(bScales + (<usize>n << 2))));
  }
}

/**
 * y[m, n] = f32(sum_k A[m, k] B[k, n]) * (aScale * bScales[n]) for the columns n in [nStart, nEnd) and every row
 * m: MatMulIntegerToFloat with a scalar A scale and B scales per column, no zero points, no bias. y float32
 * [rows, N]; a what prepareInt8Activations wrote for these rows; packed what packInt8 wrote; bScales float32
 * [N]. K a multiple of 16 (at most 65536), 0 <= nStart <= nEnd <= N; columns outside the range are not written.
 */
export function matmulInt8(y: usize, a: usize, rows: i32, K: i32, packed: usize, aScale: f32, bScales: usize, N: i32, nStart: i32, nEnd: i32): void {
  if (nStart >= nEnd) return;
  const gEnd = columnGroups(nEnd);
  const groupBytes = <usize>K << 2;
  const stride = <usize>K << 1;
  const yStride = <usize>N << 2;
  // Tiles of 16 KB of weights (at least one group), which the rows read from the first-level cache: a prompt
  // reads its weights from memory once.
  const tile = max(1, 4096 / K);
  for (let t = nStart >> 2; t < gEnd; t += tile) {
    const tEnd = min(gEnd, t + tile);
    let m = 0;
    for (; m + 3 < rows; m += 4) {
      const a0 = a + <usize>m * stride;
      const a1 = a0 + stride;
      const a2 = a1 + stride;
      const a3 = a2 + stride;
      const out = y + <usize>m * yStride;
      for (let g = t; g < tEnd; g++) {
        const w = packed + <usize>g * groupBytes;
        // c_j lane r: column j, row r; transposed to a vector a row.
        const c0 = column4(w, a0, a1, a2, a3, K);
        const c1 = column4(w + 16, a0, a1, a2, a3, K);
        const c2 = column4(w + 32, a0, a1, a2, a3, K);
        const c3 = column4(w + 48, a0, a1, a2, a3, K);
        const u0 = v128.shuffle<i32>(c0, c1, 0, 4, 1, 5);
        const u1 = v128.shuffle<i32>(c0, c1, 2, 6, 3, 7);
        const u2 = v128.shuffle<i32>(c2, c3, 0, 4, 1, 5);
        const u3 = v128.shuffle<i32>(c2, c3, 2, 6, 3, 7);
        const first = g << 2;
        storeGroup(out, v128.shuffle<i32>(u0, u2, 0, 1, 4, 5), first, aScale, bScales, nStart, nEnd);
        storeGroup(out + yStride, v128.shuffle<i32>(u0, u2, 2, 3, 6, 7), first, aScale, bScales, nStart, nEnd);
        storeGroup(out + 2 * yStride, v128.shuffle<i32>(u1, u3, 0, 1, 4, 5), first, aScale, bScales, nStart, nEnd);
        storeGroup(out + 3 * yStride, v128.shuffle<i32>(u1, u3, 2, 3, 6, 7), first, aScale, bScales, nStart, nEnd);
      }
    }
    for (; m < rows; m++) {
      const act = a + <usize>m * stride;
      const out = y + <usize>m * yStride;
      for (let g = t; g < tEnd; g++) storeGroup(out, group1(packed + <usize>g * groupBytes, act, K), g << 2, aScale, bScales, nStart, nEnd);
    }
  }
}
