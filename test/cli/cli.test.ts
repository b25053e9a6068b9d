// The built `gpt-neo` command end to end: a real process, a local fake Hub, the fixture models.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, fixtureRepo, readReference } from '../helpers/fixtures.js';
import { type FakeHub, startFakeHub } from '../hub/fake-hub.js';

const BIN = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const COMMIT = 'b'.repeat(40);
let hub: FakeHub;
let hubCache: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function gptNeo(...args: string[]): Promise<Result> {
  try {
    const { stdout, stderr } = await promisify(execFile)('node', [BIN, ...args], {
      env: { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: hubCache },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

beforeAll(async () => {
  hub = await startFakeHub({ repos: { 'EleutherAI/gpt-neo-1.3B': fixtureRepo('tiny-trained', COMMIT) } });
  hubCache = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-cli-hub-'));
});
afterAll(() => hub.close());

describe('gpt-neo generate', () => {
  const greedy = readReference('tiny-trained').greedy.cases[0];

  it('downloads the default model from the Hub and streams a continuation', async () => {
    const result = await gptNeo('generate', 'EleutherAI has', '--seed', '1');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith('EleutherAI has')).toBe(true);
    expect(result.stdout.length).toBeGreaterThan('EleutherAI has'.length + 40); // samples up to max_length 50
    expect(await gptNeo('generate', 'EleutherAI has', '--seed', '1')).toEqual(result); // reproducible, from the cache
  });

  it('gives the reference greedy text for a local folder', async () => {
    const result = await gptNeo('generate', '--model', fixture('tiny-trained'), '--greedy', '--max-new-tokens', '30', greedy.prompt);
    expect(result.stdout).toBe(`${greedy.full_text}\n`);
  });

  it('prints JSON with --json and honours generation flags', async () => {
    const result = await gptNeo(
      'generate', '--model', fixture('tiny-trained'), '--json', '--num-beams', '3', '--num-return-sequences', '2',
      '--max-new-tokens', '8', '--no-full-text', '--stop', '.', greedy.prompt,
    );
    expect(result.code).toBe(0);
    const outputs = JSON.parse(result.stdout) as Array<{ generated_text: string }>;
    expect(outputs).toHaveLength(2);
    for (const { generated_text } of outputs) {
      expect(generated_text.startsWith(greedy.prompt)).toBe(false);
      expect(generated_text).not.toContain('.');
    }
  });

  it('constrains the output with --json-schema, --regex or --choice', async () => {
    const model = ['--model', fixture('tiny-gpt2vocab'), '--no-full-text', '--max-new-tokens', '40', '--do-sample', '--seed', '2'];
    const schema = { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'], additionalProperties: false };
    const json = await gptNeo('generate', ...model, '--json-schema', JSON.stringify(schema), 'JSON:');
    expect(Object.keys(JSON.parse(json.stdout))).toEqual(['n']);
    expect((await gptNeo('generate', ...model, '--choice', 'yes', '--choice', 'no', 'Answer:')).stdout).toMatch(/^(yes|no)\n$/);
    const refused = await gptNeo('generate', ...model, '--regex', '(a)\\1', 'x');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/backreferences/);
  });

  it('reads the prompt from standard input', async () => {
    const child = execFile('node', [BIN, 'generate', '--model', fixture('tiny-trained'), '--greedy', '--max-new-tokens', '30']);
    child.stdin!.end(greedy.prompt);
    let stdout = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    await new Promise((resolve) => child.on('close', resolve));
    expect(stdout).toBe(`${greedy.full_text}\n`);
  });

  it('reports bad options and unknown models in one line on stderr with a non-zero exit', async () => {
    const badOption = await gptNeo('generate', '--model', fixture('tiny-trained'), '--do-sample', '--top-p', '1.5', 'Hi');
    expect(badOption.code).not.toBe(0);
    expect(badOption.stdout).toBe('');
    expect(badOption.stderr.trim().split('\n')).toHaveLength(1);
    expect(badOption.stderr).toContain('top_p');

    const unknown = await gptNeo('generate', '--model', 'nobody/nothing', 'Hi');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
    expect(unknown.stderr).toContain('nobody/nothing');

    const notANumber = await gptNeo('generate', '--max-new-tokens', 'many', 'Hi');
    expect(notANumber.code).not.toBe(0);
    expect(notANumber.stderr).toContain("expected a whole number, got 'many'");
  });

  it('explains every option in --help', async () => {
    const { stdout } = await gptNeo('generate', '--help');
    for (const flag of ['--model', '--dtype', '--max-new-tokens', '--top-p', '--num-beams', '--stop', '--seed', '--json']) {
      expect(stdout).toContain(flag);
    }
  });
});

describe('gpt-neo download', () => {
  it("fills huggingface_hub's cache and prints the snapshot folder", async () => {
    const cache = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-cli-dl-'));
    const { stdout, code } = await promisify(execFile)('node', [BIN, 'download', 'EleutherAI/gpt-neo-1.3B'], {
      env: { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache },
    }).then((r) => ({ ...r, code: 0 }));
    expect(code).toBe(0);
    const snapshot = path.join(cache, 'models--EleutherAI--gpt-neo-1.3B', 'snapshots', COMMIT);
    expect(stdout.trim()).toBe(snapshot);
    expect(readlinkSync(path.join(snapshot, 'model.safetensors'))).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
  });
});

describe('gpt-neo eval', () => {
  const dataDir = path.join(import.meta.dirname, '..', 'fixtures', 'eval');

  it('prints the card-style table and writes the harness JSON', async () => {
    const output = path.join(mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-cli-eval-')), 'results.json');
    const result = await gptNeo(
      'eval', '--model', fixture('tiny-trained'), '--tasks', 'lambada,piqa', '--data-dir', dataDir, '--limit', '4', '--output', output,
    );
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('lambada');
    expect(result.stdout).toContain('piqa');
    const json = JSON.parse(readFileSync(output, 'utf8'));
    expect(Object.keys(json.results).sort()).toEqual(['lambada', 'piqa']);
    expect(Object.keys(json.results.lambada).sort()).toEqual(['acc', 'acc_stderr', 'ppl', 'ppl_stderr']);
    expect(json.results.piqa.acc).toBeGreaterThanOrEqual(0);
    expect(json.config.limit).toBe(4);
  });

  it('names a missing data file', async () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-cli-nodata-'));
    const result = await gptNeo('eval', '--model', fixture('tiny-trained'), '--tasks', 'piqa', '--data-dir', empty);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(path.join(empty, 'piqa'));
  });
});
