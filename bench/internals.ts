// What the benches take from src/ beyond the package's public exports (src/index.ts): the graph builder, ONNX
// writer and runtime session to time kernels with nothing else in the graph, the model's per-format linear layers
// and their bytes, the converted graph and its inputs' names (to profile it), and the demo server the browser benches open pages on. Gathered here so that a restructuring of
// src/ meets the bench in this one file. The exceptions are the measuring child processes (run.ts, train-run.ts
// and weight-bytes.ts, which run.ts loads): they import their one module directly, because loading this file or
// the whole package would add to the start-up time and peak RSS they report.
export { startDemoServer } from '../src/cli/demo.js';
export { CAUSAL_LM_VARIANT, checkpointParameters, type Float32Kernel, LINEAR_BYTES_PER_PARAMETER, prepareOnnxModel } from '../src/convert/index.js';
export { type BlockQuantized, type ChannelQuantized, quantizeBlockwise, quantizePerChannel } from '../src/convert/quantize.js';
export { instantiateLinearKernel, type LinearKernel, linearKernelMemoryFor } from '../src/browser/kernels/linear-kernel.js';
export { IO, loadConfig, parseConfig } from '../src/model/index.js';
export { GraphBuilder } from '../src/onnx/graph.js';
export { MODEL_FILE, writeOnnxModel } from '../src/onnx/write.js';
export { OrtTensor, type RuntimeOptions, RuntimeSession } from '../src/runtime/session.js';
export type { Checkpoint, TensorInfo } from '../src/weights/index.js';
