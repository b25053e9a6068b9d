// A fixture converted as the browser build converts it (its graph options), written to a folder for onnxruntime-node.
import path from 'node:path';
import { BROWSER_GRAPH } from '../../src/browser/convert.js';
import { checkpointParameters, type WeightFormat } from '../../src/convert/parameters.js';
import { buildGPTNeoGraph } from '../../src/model/gpt-neo.js';
import { loadConfig } from '../../src/model/config.js';
import { GraphBuilder } from '../../src/onnx/graph.js';
import { writeOnnxModel } from '../../src/onnx/write.js';
import { openCheckpoint } from '../../src/weights/index.js';

export async function convertAsThePageDoes(model: string, format: WeightFormat, folder: string): Promise<string> {
  const config = await loadConfig(model);
  const checkpoint = await openCheckpoint(model);
  try {
    const graph = new GraphBuilder();
    buildGPTNeoGraph(graph, config, checkpointParameters(graph, checkpoint, config, format, model), 'causal-lm', BROWSER_GRAPH);
    const target = path.join(folder, format);
    await writeOnnxModel(graph, target);
    return target;
  } finally {
    await checkpoint.close();
  }
}
