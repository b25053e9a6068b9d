// A real `gpt-neo generate` leaves nothing behind in the temporary folder or the user's cache folder. ONNX Runtime's
// telemetry client, on unless told otherwise, leaves mat-debug-<pid>.log and .ses in one and a device id and an
// event queue in the other.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.js';

const BIN = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

// ONNX Runtime starts no telemetry where one of these says it runs in CI; the child must run as in a user's shell,
// or the test would pass in CI without the fix.
const CI_VARIABLES = [
  'CI', 'TF_BUILD', 'GITHUB_ACTIONS', 'GITLAB_CI', 'CIRCLECI', 'TRAVIS', 'JENKINS_URL', 'CODEBUILD_BUILD_ID',
  'BUILDKITE', 'TEAMCITY_VERSION', 'APPVEYOR', 'BITBUCKET_BUILD_NUMBER', 'SYSTEM_TEAMFOUNDATIONCOLLECTIONURI',
  'ORT_RUNNING_UNIT_TESTS',
];

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

describe.runIf(process.platform !== 'win32')('files left by a generate run', () => {
  it('leaves the temporary folder and the cache folder empty, and no mat-debug log in the system temporary folder', async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-temp-files-'));
    const tmp = path.join(root, 'tmp');
    const xdgCache = path.join(root, 'xdg-cache');
    mkdirSync(tmp);
    mkdirSync(xdgCache);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TMPDIR: tmp,
      XDG_CACHE_HOME: xdgCache,
      GPT_NEO_CACHE: path.join(root, 'gpt-neo-cache'),
    };
    // Our default is what is tested, not a setting of whoever runs the tests.
    for (const name of [...CI_VARIABLES, 'ORT_DISABLE_TELEMETRY']) delete env[name];

    const started = Date.now();
    const run = promisify(execFile)('node', [BIN, 'generate', '--model', fixture('tiny-trained'), '--greedy', '--max-new-tokens', '4', 'Hello'], { env });
    const pid = run.child.pid;
    const { stdout, stderr } = await run;
    expect(stderr).toBe('');
    expect(stdout.startsWith('Hello')).toBe(true);

    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(xdgCache)).toEqual([]);
    // In case the library ignored TMPDIR: the system's own temporary folder.
    for (const systemTmp of new Set(['/tmp', os.tmpdir()])) {
      const log = path.join(systemTmp, `mat-debug-${pid}.log`);
      // An older file of another process that had the same pid is not ours.
      expect(existsSync(log) && statSync(log).mtimeMs >= started - 1000, log).toBe(false);
    }
  });
});
