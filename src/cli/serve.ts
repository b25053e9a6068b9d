import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { WEIGHT_FORMATS, type WeightFormat } from '../convert/index.js';
import { createServer, EMBEDDING_POOLINGS, type EmbeddingPooling } from '../serve/index.js';
import { parseSize } from '../util/cache-size.js';
import { cliValue, hubOptions, hubOptionsFrom, integer } from './options.js';

// Every flag can also come from the environment (GPT_NEO_<FLAG>), as containers are configured.
export function serveCommand(): Command {
  const command = new Command('serve')
    .description('Serve a model over an OpenAI-compatible HTTP API (completions, chat, embeddings, models, tokenize, health, metrics)')
    .addOption(new Option('-m, --model <id-or-folder>', 'Hugging Face model id or local folder').env('GPT_NEO_MODEL').default('EleutherAI/gpt-neo-1.3B'))
    .addOption(new Option('--served-model-name <name>', "the name clients use in 'model' (default: --model)").env('GPT_NEO_SERVED_MODEL_NAME'))
    .addOption(new Option('--dtype <format>', 'weight format').choices(WEIGHT_FORMATS).env('GPT_NEO_DTYPE').default('fp32'))
    .addOption(new Option('--threads <n>', 'compute threads (default: number of cores)').argParser(integer).env('GPT_NEO_THREADS'))
    .addOption(new Option('--host <address>', 'address to bind').env('GPT_NEO_HOST').default('127.0.0.1'))
    .addOption(new Option('--port <n>', 'port (0: any free port)').argParser(integer).env('GPT_NEO_PORT').default(8000))
    .addOption(new Option('--max-batch <n>', 'sequences decoded together (KV-cache slots)').argParser(integer).env('GPT_NEO_MAX_BATCH').default(8))
    .addOption(new Option('--max-queue <n>', 'waiting sequences before requests get 429').argParser(integer).env('GPT_NEO_MAX_QUEUE').default(64))
    .addOption(new Option('--max-body <bytes>', 'largest request body').argParser(integer).env('GPT_NEO_MAX_BODY').default(4 * 2 ** 20))
    .addOption(new Option('--prefill-chunk <n>', 'prompt tokens per chunk between decoding steps').argParser(integer).env('GPT_NEO_PREFILL_CHUNK').default(128))
    .addOption(
      new Option('--prefix-cache-size <size>', "keys and values kept for prompts that start like recent ones, e.g. 2GB (0: off; default: two full contexts)")
        .argParser((value) => cliValue(() => parseSize(value, '--prefix-cache-size')))
        .env('GPT_NEO_PREFIX_CACHE_SIZE'),
    )
    .addOption(new Option('--drain-timeout <seconds>', 'on SIGTERM/SIGINT, how long running requests may finish').argParser(integer).env('GPT_NEO_DRAIN_TIMEOUT').default(30))
    .addOption(new Option('--pooling <how>', "/v1/embeddings: mean of the input's token vectors, or the last token's").choices(EMBEDDING_POOLINGS).env('GPT_NEO_POOLING').default('mean'))
    .addOption(new Option('--api-key-file <path>', "file whose first line is the API key (instead of GPT_NEO_API_KEY)").env('GPT_NEO_API_KEY_FILE'))
    .addOption(new Option('--cors-origin <origins>', 'comma-separated origins allowed by CORS (default: CORS off)').env('GPT_NEO_CORS_ORIGIN'))
    .option('--log', 'log every request (JSON lines on stdout)')
    .addHelpText('after', '\nEnvironment:\n  GPT_NEO_API_KEY   when set, /v1, /tokenize and /detokenize need "Authorization: Bearer <key>" (only from the environment or --api-key-file)');
  hubOptions(command);
  return command.action(async (flags: Record<string, unknown>) => {
    const server = await createServer({
      model: flags.model as string,
      servedModelName: flags.servedModelName as string | undefined,
      dtype: flags.dtype as WeightFormat,
      threads: flags.threads as number | undefined,
      host: flags.host as string,
      port: flags.port as number,
      maxBatch: flags.maxBatch as number,
      maxQueue: flags.maxQueue as number,
      maxBody: flags.maxBody as number,
      prefillChunk: flags.prefillChunk as number,
      prefixCacheSize: flags.prefixCacheSize as number | undefined,
      drainTimeoutMs: (flags.drainTimeout as number) * 1000,
      apiKey: apiKeyFrom(process.env.GPT_NEO_API_KEY, flags.apiKeyFile as string | undefined),
      pooling: flags.pooling as EmbeddingPooling,
      corsOrigins: typeof flags.corsOrigin === 'string' ? flags.corsOrigin.split(',').map((o) => o.trim()).filter(Boolean) : undefined,
      logger: flags.log === true,
      ...hubOptionsFrom(flags),
    });
    const url = await server.listen();
    process.stderr.write(`gpt-neo: serving '${server.modelName}' at ${url}/v1\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.stderr.write(`gpt-neo: ${signal}, finishing running requests\n`);
        server.drain().then(resolve, (error: unknown) => {
          process.stderr.write(`gpt-neo: ${(error as Error).message}\n`);
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  });
}

/**
 * The key from the environment or from a file, never from a flag's value, which would show in the process list.
 * Both at once is an error rather than a silent choice: one of them is stale, and guessing which is a security bug.
 */
export function apiKeyFrom(fromEnvironment: string | undefined, file: string | undefined): string | undefined {
  if (file === undefined) return fromEnvironment || undefined;
  if (fromEnvironment) throw new Error(`both GPT_NEO_API_KEY and --api-key-file ${file} are set; give the key one way`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the API key file ${file}: ${(error as Error).message}`);
  }
  const key = text.split(/\r?\n/, 1)[0]!.trim();
  if (key === '') throw new Error(`the API key file ${file} is empty: its first line must be the key`);
  return key;
}
