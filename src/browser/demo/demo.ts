/// <reference lib="dom" />
// The demo page behind `gpt-neo demo`. Its element ids (#prompt, #max-new-tokens, #do-sample, #generate,
// #output with data-state="done") are what test/browser drives.
import type { GenerationConfig, TokenStreamer } from '../../generation/index.js';
import { AutoTokenizer, type BrowserDevice, type GPT2Tokenizer, type LoadStage, loadBrowserModel, resolveModelSource, TextIteratorStreamer, type WeightFormat } from '../index.js';
import { textGenerationPipeline } from '../../pipeline/index.js';

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = element<HTMLDivElement>('status');
const progress = element<HTMLProgressElement>('progress');
const errorBox = element<HTMLDivElement>('error');
const output = element<HTMLDivElement>('output');
const speed = element<HTMLParagraphElement>('speed');
const button = element<HTMLButtonElement>('generate');
const numberIn = (id: string) => element<HTMLInputElement>(id).valueAsNumber;

/** The server's defaults (`gpt-neo demo --model --dtype`), overridden by ?model= and ?dtype= in the URL. */
async function settings(): Promise<{ model: string; dtype: WeightFormat; device: BrowserDevice; endpoint?: string }> {
  const served: { model?: string; dtype?: WeightFormat; endpoint?: string } = await fetch('./demo-config.json')
    .then((response) => (response.ok ? response.json() : {}))
    .catch(() => ({}));
  const query = new URLSearchParams(location.search);
  const model = query.get('model') ?? served.model;
  if (!model) throw new Error('no model chosen: start the page with `gpt-neo demo --model <hub id or folder>` or add ?model=<hub id or URL>');
  const dtype = (query.get('dtype') ?? served.dtype ?? 'q8') as WeightFormat;
  const device = (query.get('device') ?? 'wasm') as BrowserDevice;
  return { model, dtype, device, endpoint: served.endpoint };
}

const STAGE_TEXT: Record<LoadStage, string> = {
  downloading: 'Downloading the checkpoint',
  converting: 'Converting the weights',
  'loading-cached': 'Loading the converted model from browser storage',
  'starting-runtime': 'Starting ONNX Runtime',
};

function showProgress(stage: LoadStage, done: number, total: number): void {
  const amount = total > 0 ? ` ${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB` : done > 0 ? ` ${(done / 1e6).toFixed(1)} MB` : '';
  status.textContent = `${STAGE_TEXT[stage]}…${amount}`;
  if (total > 0) progress.value = done / total;
  else progress.removeAttribute('value');
}

function fail(message: string): void {
  errorBox.textContent = message;
  status.textContent = 'Failed';
  status.dataset.state = 'error';
  progress.hidden = true;
}

type Loaded = { generator: ReturnType<typeof textGenerationPipeline>; tokenizer: GPT2Tokenizer };
let current: Loaded | undefined;

/** Loads a model (a Hub id, a URL, or a picked folder's files), replacing the one loaded before. */
async function load(reference: string | File[], dtype: WeightFormat, device: BrowserDevice, endpoint?: string): Promise<void> {
  button.disabled = true;
  errorBox.textContent = '';
  delete status.dataset.state;
  progress.hidden = false;
  const name = Array.isArray(reference) ? reference[0]?.webkitRelativePath.split('/')[0] ?? 'picked folder' : reference;
  element('model-name').textContent = `${name} (${dtype})`;
  await current?.generator.dispose();
  current = undefined;
  const tokenizer = await AutoTokenizer.from_pretrained(reference, { endpoint });
  const loaded = await loadBrowserModel(resolveModelSource(reference, { endpoint }), { dtype, device, onProgress: showProgress });
  current = { generator: textGenerationPipeline(loaded.model, tokenizer), tokenizer };
  progress.hidden = true;
  status.textContent = `Ready: ${dtype} on ${loaded.device}, ${loaded.threads} thread${loaded.threads === 1 ? '' : 's'}${
    crossOriginIsolated ? '' : ' (not cross-origin isolated: no WebAssembly threads)'
  }${loaded.fromCache ? ', converted model from browser storage' : ''}`;
  status.dataset.state = 'ready';
  button.disabled = false;
}

async function main(): Promise<void> {
  const { model, dtype, device, endpoint } = await settings();
  const folderPicker = element<HTMLInputElement>('model-folder');
  folderPicker.addEventListener('change', () => {
    const files = Array.from(folderPicker.files ?? []);
    if (files.length > 0) load(files, dtype, device).catch((error: unknown) => fail(`Could not load the model: ${(error as Error).message}`));
  });
  button.addEventListener('click', async () => {
    button.disabled = true;
    errorBox.textContent = '';
    output.dataset.state = 'generating';
    const prompt = element<HTMLTextAreaElement>('prompt').value;
    output.replaceChildren(Object.assign(document.createElement('span'), { className: 'prompt', textContent: prompt }));
    const doSample = element<HTMLInputElement>('do-sample').checked;
    const options: GenerationConfig = {
      max_new_tokens: numberIn('max-new-tokens'),
      do_sample: doSample,
      ...(doSample && { temperature: numberIn('temperature'), top_k: numberIn('top-k'), top_p: numberIn('top-p') }),
      ...(doSample && Number.isFinite(numberIn('seed')) && { seed: numberIn('seed') }),
    };
    const { tokenizer } = current!;
    const skipSpecialIds = new Set([tokenizer.eos_token_id, tokenizer.pad_token_id].filter((id) => id !== null));
    const text = new TextIteratorStreamer((ids) => tokenizer.decodeBytes(ids), { skipSpecialIds });
    // When each new token arrives, for the time to the first token and tokens/s after it.
    const started = performance.now();
    const times: number[] = [];
    const counting: TokenStreamer = {
      put: (ids) => {
        times.push(...ids.map(() => performance.now()));
        text.put(ids);
      },
      end: () => text.end(),
      abort: (reason) => text.abort(reason),
    };
    const generation = current!.generator(prompt, { ...options, streamer: counting });
    generation.catch(() => {}); // the error reaches the loop below through the streamer
    try {
      for await (const piece of text) output.append(piece);
      await generation;
      const tokens = times.length;
      if (tokens > 1) {
        const seconds = (times.at(-1)! - times[0]!) / 1000;
        speed.textContent = `${tokens} tokens; first after ${((times[0]! - started) / 1000).toFixed(2)} s, then ${((tokens - 1) / seconds).toFixed(1)} tokens/s`;
      }
    } catch (error) {
      errorBox.textContent = `Generation failed: ${(error as Error).message}`;
    } finally {
      output.dataset.state = 'done';
      button.disabled = false;
    }
  });
  await load(model, dtype, device, endpoint);
}

main().catch((error: unknown) => fail(`Could not load the model: ${(error as Error).message}`));
window.addEventListener('unhandledrejection', (event) => fail(String(event.reason?.message ?? event.reason)));
