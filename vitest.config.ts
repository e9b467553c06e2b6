import { defineConfig } from 'vitest/config';

// One run starts the PostgreSQL servers (PGTEST_MAJORS, default 12,17) once in
// globalSetup; each test file makes its own databases on them.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    reporters: ['default', './test/harness/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
