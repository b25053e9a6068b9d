import { Tensor } from 'onnxruntime-common';

/**
 * ONNX Runtime's tensor class, from the package that onnxruntime-node and onnxruntime-web both build on, so
 * code that feeds the model runs unchanged on either.
 */
export type OrtTensor = Tensor;
export const OrtTensor = Tensor;

/** A loaded model that runs: an onnxruntime-node session in Node, an onnxruntime-web one in a browser. */
export interface InferenceRunner {
  /** `fetches` names the outputs wanted (default all). */
  run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
  /**
   * false when the runtime cannot take zero-sized tensors (onnxruntime-web's WebGPU kernels refuse them): the
   * decoder then feeds an empty cache as its reserved slots, all masked, instead of as zero slots.
   */
  readonly zeroSizedTensors?: boolean;
}
