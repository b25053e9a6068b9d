import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ONNX Runtime sessions already use both cores; running test files in parallel only thrashes.
    fileParallelism: false,
  },
});
