import { defineConfig } from 'vitest/config';

// Two projects: `unit` (test/unit: pure code, no server, seconds) and
// `integration` (test/integration, test/e2e: real PostgreSQL servers of every
// major in PGTEST_MAJORS, default 12,17, started once by its globalSetup; each
// test file makes its own databases on them). `npm test` runs both;
// `npm run test:unit` only the first.
export default defineConfig({
  test: {
    reporters: ['default', './test/harness/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: { name: 'integration', include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'], globalSetup: ['test/harness/global-setup.ts'] },
      },
    ],
  },
});
