/// <reference lib="dom" />
/**
 * The package's browser build (package.json "browser" export): the same tokenizer, model graph, generation
 * and pipeline as in Node, on onnxruntime-web. Only loading differs: files come over HTTP (a Hub repo or a
 * served folder) or from files the user picked, conversion runs in a worker, and converted models are kept
 * in the browser's storage.
 */
import { resolveUrl } from '../hub/http.js';
import { assertRepoId } from '../hub/resolve.js';
import { DEFAULT_ENDPOINT } from '../hub/settings.js';
import type { GPTNeoForCausalLM as GPTNeoModel } from '../modeling/causal-lm.js';
import { textGenerationPipeline, type TextGenerationPipeline } from '../pipeline/index.js';
import { AutoTokenizer as FilesTokenizer, type GPT2Tokenizer } from '../tokenizer/index.js';
import { ModelFetchError, modelFiles, type ModelSource } from './files.js';
import { type BrowserModelOptions, loadBrowserModel } from './load.js';

export interface ModelLocationOptions {
  /** Hub revision (branch, tag or commit), default "main". */
  revision?: string;
  /** Hub endpoint, default https://huggingface.co. */
  endpoint?: string;
  /** A Hugging Face token, for private or gated repos. */
  token?: string;
}

export type BrowserPipelineOptions = BrowserModelOptions & ModelLocationOptions;

/** A model named as in Node: a Hub id ("EleutherAI/gpt-neo-125M"), a folder URL (absolute, or relative to the page), or picked files. */
export type ModelReference = string | File[];

/** Where a model reference points: URLs and paths as they are, Hub ids at their resolve URL. */
export function resolveModelSource(reference: ModelReference, options: ModelLocationOptions = {}): ModelSource {
  if (Array.isArray(reference)) return { files: reference };
  const isUrlOrPath = /^[a-z][a-z0-9+.-]*:/i.test(reference) || /^\.{0,2}\//.test(reference);
  if (isUrlOrPath) return { url: new URL(reference, globalThis.location?.href).href, token: options.token };
  assertRepoId(reference);
  const endpoint = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  return { url: resolveUrl(endpoint, reference, options.revision ?? 'main', ''), token: options.token };
}

/** The files of a model folder, checked to be one: a folder without config.json is named as such, before anything else is read. */
async function openModelFolder(source: ModelSource, reference: ModelReference) {
  const files = modelFiles(source);
  if (!(await files.exists('config.json'))) {
    const what = Array.isArray(reference) ? 'the picked files are' : `${reference} is`;
    throw new ModelFetchError(`${files.describe('config.json')} was not found (HTTP 404): ${what} not a GPT-Neo model folder`);
  }
  return files;
}

export const AutoTokenizer = {
  async from_pretrained(reference: ModelReference, options: ModelLocationOptions = {}): Promise<GPT2Tokenizer> {
    return FilesTokenizer.from_pretrained(await openModelFolder(resolveModelSource(reference, options), reference));
  },
};

export const GPTNeoForCausalLM = {
  async from_pretrained(reference: ModelReference, options: BrowserPipelineOptions = {}): Promise<GPTNeoModel> {
    return (await loadBrowserModel(resolveModelSource(reference, options), options)).model;
  },
};

/** pipeline('text-generation', model, { dtype }) as in Node; `generator.stream(prompt)` yields text as it is generated. */
export async function pipeline(
  task: 'text-generation',
  reference: ModelReference,
  options: BrowserPipelineOptions = {},
): Promise<TextGenerationPipeline> {
  if (task !== 'text-generation') throw new Error(`pipeline task '${task as string}' is not supported (only 'text-generation')`);
  const source = resolveModelSource(reference, options);
  const tokenizer = await FilesTokenizer.from_pretrained(await openModelFolder(source, reference));
  const { model } = await loadBrowserModel(source, options);
  return textGenerationPipeline(model, tokenizer);
}

export { loadBrowserModel, type BrowserModel, type BrowserModelOptions, type LoadStage } from './load.js';
export { httpModelFiles, ModelFetchError, pickedModelFiles, type ModelSource } from './files.js';
export { WASM_WEIGHTS_LIMIT } from './convert.js';
export { webGpuAvailable, type BrowserDevice } from './runtime.js';
export { TextIteratorStreamer, TextStreamer, type GenerationConfig, type TokenStreamer } from '../generation/index.js';
export type { TextGenerationOptions, TextGenerationOutput, TextGenerationPipeline } from '../pipeline/index.js';
export type { GPT2Tokenizer } from '../tokenizer/index.js';
export { WEIGHT_FORMATS, type WeightFormat } from '../convert/parameters.js';
