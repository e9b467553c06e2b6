/**
 * Starts one real PostgreSQL server per major in PGTEST_MAJORS (default
 * 12,17) for the whole vitest run, in parallel, and stops them afterwards.
 * If the runner is killed, the servers die with it (pdeathsig) and their
 * directories are swept by a later run.
 */
import type { TestProject } from 'vitest/node';
import { startServer, sweepStaleServers, type RunningServer } from '../../src/embedded/index.js';
import { parseMajors } from './servers.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await sweepStaleServers();
  const majors = parseMajors(process.env.PGTEST_MAJORS);
  const started: RunningServer[] = await Promise.all(majors.map((major) => startServer({ major })));
  project.provide(
    'pgServers',
    started.map((s) => ({ major: s.major, version: s.version, host: s.host, port: s.port, user: s.user })),
  );
  process.stderr.write(`[pgtest] PostgreSQL ${started.map((s) => `${s.version} on :${s.port}`).join(', ')}\n`);
  return async () => {
    await Promise.all(started.map((s) => s.stop()));
  };
}
