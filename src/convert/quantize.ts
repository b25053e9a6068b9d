/** A [N, K] weight (nn.Linear layout) as int8 codes per output channel, transposed for the integer GEMM (MatMulIntegerToFloat). */
export interface ChannelQuantized {
  /** [K, N]: w[n, k] ≈ codes[k * N + n] * scales[n]. */
  codes: Int8Array;
  /** [N] */
  scales: Float32Array;
  /** [N]: sum over k of codes[k, n], for applying activation zero points after the product. */
  codeSums: Float32Array;
}

/** Symmetric int8 quantization per output channel (row of the nn.Linear weight): code = round(w / (max|w| / 127)). */
export function quantizePerChannel(weight: Float32Array, N: number, K: number): ChannelQuantized {
  const codes = new Int8Array(K * N);
  const scales = new Float32Array(N);
  const codeSums = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let max = 0;
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(weight[n * K + k]!));
    const scale = max > 0 ? max / 127 : 1;
    scales[n] = scale;
    for (let k = 0; k < K; k++) {
      const code = Math.round(weight[n * K + k]! / scale);
      codes[k * N + n] = code;
      codeSums[n] += code;
    }
  }
  return { codes, scales, codeSums };
}

/** A [N, K] weight quantized in blocks along K, in ONNX Runtime's MatMulNBits layout. */
export interface BlockQuantized {
  bits: 4 | 8;
  blockSize: number;
  /** [N, blocks, blockSize * bits / 8]: codes packed low nibble first. */
  codes: Uint8Array;
  /** [N, blocks] */
  scales: Float32Array;
  /** [N, ceil(blocks * bits / 8)]: 4-bit zero points are packed two per byte, low nibble first. */
  zeroPoints: Uint8Array;
}

/**
 * Asymmetric min/max block quantization of a row-major [N, K] weight (nn.Linear layout):
 * w ≈ (code - zeroPoint) * scale per block of `blockSize` values along K. The range always includes 0,
 * so zero weights (and the padding of a partial last block) stay exactly zero.
 */
export function quantizeBlockwise(weight: Float32Array, N: number, K: number, bits: 4 | 8, blockSize: number): BlockQuantized {
  const blocks = Math.ceil(K / blockSize);
  const maxCode = (1 << bits) - 1;
  const blobSize = (blockSize * bits) / 8;
  const zeroPointBytes = Math.ceil((blocks * bits) / 8);
  const codes = new Uint8Array(N * blocks * blobSize);
  const scales = new Float32Array(N * blocks);
  const zeroPoints = new Uint8Array(N * zeroPointBytes);
  for (let n = 0; n < N; n++) {
    const row = n * K;
    for (let b = 0; b < blocks; b++) {
      const start = b * blockSize;
      const end = Math.min(start + blockSize, K);
      let min = 0;
      let max = 0;
      for (let k = start; k < end; k++) {
        const w = weight[row + k]!;
        if (w < min) min = w;
        if (w > max) max = w;
      }
      const scale = max > min ? (max - min) / maxCode : 1;
      const zeroPoint = Math.min(maxCode, Math.max(0, Math.round(-min / scale)));
      scales[n * blocks + b] = scale;
      if (bits === 8) zeroPoints[n * zeroPointBytes + b] = zeroPoint;
      else zeroPoints[n * zeroPointBytes + (b >> 1)]! |= zeroPoint << ((b & 1) * 4);
      const blob = (n * blocks + b) * blobSize;
      for (let i = 0; i < blockSize; i++) {
        const k = start + i;
        const w = k < end ? weight[row + k]! : 0;
        const code = Math.min(maxCode, Math.max(0, Math.round(w / scale) + zeroPoint));
        if (bits === 8) codes[blob + i] = code;
        else codes[blob + (i >> 1)]! |= code << ((i & 1) * 4);
      }
    }
  }
  return { bits, blockSize, codes, scales, zeroPoints };
}

/** The float weight a quantized one stands for, [N, K] (for tests and quality checks). */
export function dequantizeBlockwise(q: BlockQuantized, N: number, K: number): Float32Array {
  const blocks = Math.ceil(K / q.blockSize);
  const blobSize = (q.blockSize * q.bits) / 8;
  const zeroPointBytes = Math.ceil((blocks * q.bits) / 8);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / q.blockSize);
      const i = k % q.blockSize;
      const blob = (n * blocks + b) * blobSize;
      const code = q.bits === 8 ? q.codes[blob + i]! : (q.codes[blob + (i >> 1)]! >> ((i & 1) * 4)) & 15;
      const zeroPoint =
        q.bits === 8
          ? q.zeroPoints[n * zeroPointBytes + b]!
          : (q.zeroPoints[n * zeroPointBytes + (b >> 1)]! >> ((b & 1) * 4)) & 15;
      out[n * K + k] = (code - zeroPoint) * q.scales[n * blocks + b]!;
    }
  }
  return out;
}
