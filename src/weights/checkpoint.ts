import type { ModelFiles } from '../util/model-files.js';
import { CheckpointError } from './errors.js';
import { localModelFiles } from './local-files.js';
import { readSafetensors } from './safetensors.js';
import { readTorchZip } from './torch-zip.js';
import type { Checkpoint, TensorInfo, WeightFile } from './types.js';

type WeightFileOpener = (files: ModelFiles, name: string) => Promise<WeightFile>;

const openSafetensorsIn: WeightFileOpener = async (files, name) => readSafetensors(await files.open(name));

const openTorchZipIn: WeightFileOpener = async (files, name) => readTorchZip(await files.open(name));

/** In order of preference: safetensors never runs a pickle parser and needs no zip directory. */
const LAYOUTS: ReadonlyArray<{ file: string; sharded: boolean; openFile: WeightFileOpener }> = [
  { file: 'model.safetensors', sharded: false, openFile: openSafetensorsIn },
  { file: 'model.safetensors.index.json', sharded: true, openFile: openSafetensorsIn },
  { file: 'pytorch_model.bin', sharded: false, openFile: openTorchZipIn },
  { file: 'pytorch_model.bin.index.json', sharded: true, openFile: openTorchZipIn },
];

/** Opens the weights of a Hugging Face model folder, reading only headers; tensors are read on demand. */
export async function openCheckpoint(folder: string): Promise<Checkpoint> {
  return openCheckpointFiles(localModelFiles(folder));
}

/** openCheckpoint for a model folder anywhere (on disk, over HTTP, picked in a browser). */
export async function openCheckpointFiles(files: ModelFiles): Promise<Checkpoint> {
  for (const layout of LAYOUTS) {
    if (!(await files.exists(layout.file))) continue;
    const weightFiles = layout.sharded
      ? await openShards(files, layout.file, layout.openFile)
      : [await layout.openFile(files, layout.file)];
    try {
      return new FolderCheckpoint(files.location, weightFiles);
    } catch (error) {
      await Promise.all(weightFiles.map((weightFile) => weightFile.close()));
      throw error;
    }
  }
  throw new CheckpointError(
    `no weights found in ${files.location}: looked for ${LAYOUTS.map((layout) => layout.file).join(', ')}`,
  );
}

/** Opens every shard named by an index.json and checks that each tensor is where the index says. */
async function openShards(files: ModelFiles, indexName: string, openFile: WeightFileOpener): Promise<WeightFile[]> {
  const indexFile = files.describe(indexName);
  const weightMap = await readWeightMap(files, indexName);
  const shardNames = [...new Set(weightMap.values())];
  const opened: WeightFile[] = [];
  try {
    for (const shardName of shardNames) {
      if (/[/\\]/.test(shardName) || shardName === '..' || shardName === '.') {
        throw new CheckpointError(`${indexFile}: shard name '${shardName}' points outside the model folder`);
      }
      if (!(await files.exists(shardName))) {
        throw new CheckpointError(`${indexFile}: shard '${shardName}' is missing (expected ${files.describe(shardName)})`);
      }
      opened.push(await openFile(files, shardName));
    }
    for (const [tensorName, shardName] of weightMap) {
      if (!opened[shardNames.indexOf(shardName)].tensors.has(tensorName)) {
        throw new CheckpointError(`${indexFile}: tensor '${tensorName}' is not in its shard '${shardName}'`);
      }
    }
    return opened;
  } catch (error) {
    await Promise.all(opened.map((file) => file.close()));
    throw error;
  }
}

async function readWeightMap(files: ModelFiles, indexName: string): Promise<Map<string, string>> {
  const indexFile = files.describe(indexName);
  let index: unknown;
  try {
    index = JSON.parse(await files.readText(indexName));
  } catch (error) {
    throw new CheckpointError(`${indexFile}: malformed index: ${(error as Error).message}`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError(`${indexFile}: no "weight_map" object`);
  }
  const entries = Object.entries(weightMap);
  const notAFileName = entries.find(([, shard]) => typeof shard !== 'string' || shard === '');
  if (notAFileName) throw new CheckpointError(`${indexFile}: weight_map entry '${notAFileName[0]}' does not name a file`);
  return new Map(entries as Array<[string, string]>);
}

class FolderCheckpoint implements Checkpoint {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly files: string[];
  private readonly fileOfTensor = new Map<string, WeightFile>();
  private closed = false;

  constructor(
    private readonly folder: string,
    private readonly weightFiles: WeightFile[],
  ) {
    const tensors = new Map<string, TensorInfo>();
    for (const weightFile of weightFiles) {
      for (const [name, info] of weightFile.tensors) {
        const earlier = this.fileOfTensor.get(name);
        if (earlier) {
          throw new CheckpointError(`tensor '${name}' appears in both ${earlier.path} and ${weightFile.path}`);
        }
        this.fileOfTensor.set(name, weightFile);
        tensors.set(name, info);
      }
    }
    this.tensors = tensors;
    this.files = weightFiles.map((weightFile) => weightFile.path);
  }

  readFloat32(name: string): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new CheckpointError(`checkpoint ${this.folder} is closed`));
    const weightFile = this.fileOfTensor.get(name);
    if (!weightFile) return Promise.reject(new CheckpointError(`no tensor '${name}' in the checkpoint in ${this.folder}`));
    return weightFile.readFloat32(name);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.weightFiles.map((weightFile) => weightFile.close()));
  }
}

