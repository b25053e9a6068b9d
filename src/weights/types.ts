export interface TensorInfo {
  name: string;
  /** safetensors dtype name; a .bin storage type is reported under the same names. */
  dtype: 'F32' | 'F16' | 'BF16' | 'U8' | 'I64' | string;
  shape: number[];
}

export interface Checkpoint {
  /** Every tensor in the checkpoint (all shards), by HF state_dict name. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Files the weights came from (absolute paths). */
  readonly files: string[];
  /**
   * Reads one tensor and converts it exactly to float32 (F16/BF16 widen exactly; integer dtypes are converted too).
   * Reads only that tensor's bytes from disk.
   */
  readFloat32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

/** One weights file (a whole checkpoint or one shard), opened with only its header in memory. */
export interface WeightFile {
  readonly path: string;
  readonly size: number;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readFloat32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}
