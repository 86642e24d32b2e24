import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Every file starts real processes and sockets; two cores are shared by all of them.
    maxWorkers: 2,
    // The JSON report lets .ci/run print the plain "N passed, M failed" line.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});
