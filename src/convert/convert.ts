import path from 'node:path';
import { GraphBuilder } from '../onnx/graph.js';
import { MODEL_FILE, writeOnnxModel } from '../onnx/write.js';
import { openCheckpoint } from '../weights/index.js';
import { withLoraAdapter } from '../lora/index.js';
import type { GPTNeoConfig } from '../model/config.js';
import { openConversion } from './conversion-cache.js';
import { buildGPTNeoGraph, GRAPH_FORMAT_VERSION, type GraphVariant } from '../model/gpt-neo.js';
import { checkpointParameters, type Float32Kernel, type WeightFormat } from './parameters.js';

/** The graph built by default: the causal LM with its logits. Callers building another graph name it. */
export const CAUSAL_LM_VARIANT: GraphVariant = 'causal-lm';

export interface OnnxModel {
  modelPath: string;
  /** Until called, the conversion counts as in use and no cache removal touches it. */
  release(): Promise<void>;
}

/**
 * Returns an ONNX model for (checkpoint, weight format, graph variant), converting the checkpoint on first
 * use. The conversion is keyed by the checkpoint's content (its tensors' sha256), the config, the format,
 * the variant, fp32's kernel and the graph version, never by the folder: a moved or copied checkpoint reuses it.
 * A LoRA adapter is merged into the weights it targets (its files are hashed into the key like the weights).
 */
export async function prepareOnnxModel(
  folder: string,
  config: GPTNeoConfig,
  format: WeightFormat,
  variant: GraphVariant = CAUSAL_LM_VARIANT,
  adapter?: string,
  float32Kernel: Float32Kernel = 'gemm',
): Promise<OnnxModel> {
  const base = await openCheckpoint(folder);
  const checkpoint = adapter ? await withLoraAdapter(base, adapter).catch(async (error: unknown) => {
    await base.close();
    throw error;
  }) : base;
  try {
    const conversion = await openConversion(
      {
        folder,
        weightFiles: checkpoint.files,
        // Only fp32 has a kernel choice: the keys of q8 and q4 conversions stay as they were.
        key: { config, format, variant, graphVersion: GRAPH_FORMAT_VERSION, ...(format === 'fp32' && { float32Kernel }) },
      },
      async (target) => {
        const graph = new GraphBuilder();
        buildGPTNeoGraph(graph, config, checkpointParameters(graph, checkpoint, config, format, folder, float32Kernel), variant);
        await writeOnnxModel(graph, target, `Converting ${path.basename(folder)} to ${format}`);
      },
    );
    return { modelPath: path.join(conversion.folder, MODEL_FILE), release: conversion.release };
  } finally {
    await checkpoint.close();
  }
}
