// Headless Chromium from the system (Debian's `chromium` package), driven by playwright-core: no browser
// download at install. Shared by the browser tests and the browser benches (bench/).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Without a GPU, Chromium offers WebGPU on SwiftShader (Vulkan on the CPU) when asked: slow, but it runs the same
 * WebGPU code paths as a GPU would, so the tests can check onnxruntime-web's WebGPU kernels.
 */
const SOFTWARE_WEBGPU = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader', '--enable-features=Vulkan'];

/**
 * A fresh profile each time, so nothing (stored conversions, compiled WebAssembly) carries over between runs.
 * `webgpu`: with a software WebGPU adapter instead of no GPU at all.
 */
export async function launchChromium(options: { webgpu?: boolean } = {}): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-chromium-'));
  const context = await chromium
    .launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        ...(options.webgpu ? SOFTWARE_WEBGPU : ['--disable-gpu']),
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    .catch(async (error: Error) => {
      await rm(profile, { recursive: true, force: true });
      throw new Error(`could not start ${CHROMIUM} (install Debian's chromium package, or set CHROMIUM_PATH): ${error.message}`);
    });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
