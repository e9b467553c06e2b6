/**
 * Helpers the benchmarks share for talking to their local servers: a
 * short-lived client, pgbench runs (TPS parsed from its output), and waiting
 * on a condition.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import type { RunningServer } from '../src/embedded/index.js';
import { requireTool } from './report.js';

export async function withClient<T>(s: RunningServer, db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: db });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Runs pgbench against `db`; resolves with its TPS (NaN when it printed none). With `allowFailure`, a non-zero exit is not an error. */
export function pgbench(s: RunningServer, db: string, extra: string[], allowFailure = false): Promise<{ tps: number; output: string }> {
  const path = requireTool('pgbench', 'postgresql-15');
  return new Promise((resolve, reject) => {
    const child = spawn(path, ['-h', s.host, '-p', String(s.port), '-U', 'postgres', ...extra, db], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => {
      if (code !== 0 && !allowFailure) return reject(new Error(`pgbench ${extra.join(' ')} failed:\n${output}`));
      const m = /tps = ([\d.]+) \((without|excluding)/.exec(output);
      resolve({ tps: m ? Number(m[1]) : NaN, output });
    });
  });
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 600_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
