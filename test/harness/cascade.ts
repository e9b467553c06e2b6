/**
 * Shared set-up of the cascade e2e tests (issue 16): a database on an extra
 * server started by the test (a third major), the desired-state file of a
 * cascade, `pgconvey run --node X` per node as child processes, a wait until
 * every node has applied a root tick taken now with every table `ok`, a
 * seeded writer on the root's accounts/items tables, and the row-by-row
 * differences of each node from the root (harness/exact.ts, no pgconvey code)
 * and the sequences a node has behind the root's.
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import type { RunningServer } from '../../src/embedded/index.js';
import { waitFor } from './compare.js';
import { compareTable, qualified } from './exact.js';
import { startCli, type CliProcess } from './processes.js';
import type { Rng } from './random.js';

export interface Db {
  dsn: string;
  connect(): Promise<pg.Client>;
}

/** A fresh database on `server` (a server the test file started; thrown away with it). */
export async function extraServerDatabase(server: RunningServer, prefix = 'cas'): Promise<Db> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ host: server.host, port: server.port, user: server.user, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`);
  await admin.end();
  const config = { host: server.host, port: server.port, user: server.user, database: name };
  return {
    dsn: `host=${server.host} port=${server.port} user=${server.user} dbname=${name}`,
    connect: async () => {
      const c = new pg.Client(config);
      c.on('error', () => undefined); // the server stops after the file's tests
      await c.connect();
      return c;
    },
  };
}

/** A node of the file: name, type, provider (none for the root); its database is `<name>_db`. */
export type CascadeNode = [name: string, type: 'root' | 'branch' | 'leaf', provider?: string];

/** The desired-state file of one queue over `nodes`; `dsn` by node name (every database listed, used or not). */
export function cascadeYaml(dsn: Record<string, string>, nodes: CascadeNode[], o: { queue?: string; sequences?: boolean } = {}): string {
  return [
    'version: 1',
    'databases:',
    ...Object.entries(dsn).map(([k, v]) => `  ${k}_db: "${v}"`),
    'daemons:',
    '  worker: { retry_delay: 200ms }',
    'queues:',
    `  ${o.queue ?? 'shop'}:`,
    '    nodes:',
    ...nodes.map(([name, type, provider]) => `      ${name}: { database: ${name}_db, type: ${type}${provider ? `, provider: ${provider}` : ''} }`),
    '    tables: { include: ["public.*"] }',
    ...(o.sequences ? ['    sequences: { include: ["public.*"] }'] : []),
    '',
  ].join('\n');
}

/** `pgconvey run FILE --node X` per node, as child processes (JSON logs kept for failures). */
export class NodeRuns {
  readonly runs = new Map<string, CliProcess>();
  constructor(private readonly file: string) {}
  start(node: string): void {
    this.runs.set(node, startCli(['run', this.file, '--node', node, '--log-format', 'json']));
  }
  async stop(node: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.runs.get(node)?.kill(signal);
    this.runs.delete(node);
  }
  async stopAll(): Promise<void> {
    await Promise.all([...this.runs.values()].map((p) => p.kill('SIGTERM')));
    this.runs.clear();
  }
  logs(): string {
    return [...this.runs].map(([n, p]) => `--- ${n}:\n${p.lines.slice(-12).join('\n')}`).join('\n');
  }
}

/** Waits until each of `nodes` has applied a root tick taken now, every table `ok` there. */
export async function caughtUp(what: string, root: pg.Client, clients: ReadonlyMap<string, pg.Client>, nodes: readonly string[], o: { queue?: string; runs?: NodeRuns; logs?: () => string; timeoutMs?: number } = {}): Promise<void> {
  const queue = o.queue ?? 'shop';
  const tick = (await root.query<{ t: string }>('SELECT pgconvey.force_tick($1)::text AS t', [queue])).rows[0]!.t;
  let polls = 0;
  await waitFor(
    `${what}: every table ok and tick ${tick} applied on ${nodes.join(', ')}`,
    async () => {
      // A copy under a branch merges at the next tick from above: tick the root now and then (else its idle period).
      if (++polls % 5 === 0) await root.query('SELECT pgconvey.force_tick($1)', [queue]);
      for (const n of nodes) {
        const r = await clients.get(n)!.query(
          'SELECT (SELECT completed_tick FROM pgconvey.subscription WHERE queue_name = $1) AS done, (SELECT count(*) FROM pgconvey.subscriber_table WHERE queue_name = $1 AND state <> $2)::int AS busy',
          [queue, 'ok'],
        );
        if (r.rows[0].busy !== 0 || BigInt(r.rows[0].done ?? 0) < BigInt(tick)) return false;
      }
      return true;
    },
    o.timeoutMs ?? 180_000,
    200,
  ).catch((err) => {
    const logs = o.logs?.() ?? o.runs?.logs();
    throw new Error(`${(err as Error).message}${logs ? `\nrun logs:\n${logs}` : ''}`);
  });
}

export const ACCOUNTS_SCHEMA = `
  CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL, note text);
  CREATE TABLE public.items (id bigserial PRIMARY KEY, account int NOT NULL, payload jsonb);`;
export const ACCOUNTS_SEED = `
  INSERT INTO public.accounts SELECT g, g * 10, 'seed ' || g FROM generate_series(1, 2000) g;
  INSERT INTO public.items (account, payload) SELECT g % 2000 + 1, jsonb_build_object('n', g) FROM generate_series(1, 3000) g;`;

/**
 * A writer on the root's accounts (inserts, updates, deletes, key changes) and items (inserts only: a
 * seeded item row is never touched), in transactions of 1-5 statements, 5% rolled back.
 */
export function accountsWriter(db: Db, rng: Rng): { written: () => number; stop: () => Promise<number> } {
  let writing = true;
  let written = 0;
  const done = (async () => {
    const w = await db.connect();
    try {
      while (writing) {
        await w.query('BEGIN');
        for (let i = rng.int(1, 5); i > 0; i--) {
          const id = rng.int(1, 2500);
          switch (rng.int(0, 4)) {
            case 0:
              await w.query('INSERT INTO public.accounts VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [rng.int(10_000, 1_000_000), rng.int(0, 1000), `n${rng.int(0, 99)}`]);
              break;
            case 1:
              await w.query('UPDATE public.accounts SET balance = balance + $2, note = $3 WHERE id = $1', [id, rng.int(-50, 50), rng.chance(0.2) ? null : `u${rng.int(0, 99)}`]);
              break;
            case 2:
              await w.query('DELETE FROM public.accounts WHERE id = $1', [id]);
              break;
            case 3:
              await w.query('UPDATE public.accounts SET id = $2 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM public.accounts WHERE id = $2)', [id, rng.int(1_000_001, 2_000_000)]);
              break;
            default:
              await w.query("INSERT INTO public.items (account, payload) SELECT $1, jsonb_build_object('w', g) FROM generate_series(1, $2) g", [id, rng.int(1, 10)]);
          }
        }
        await w.query(rng.chance(0.05) ? 'ROLLBACK' : 'COMMIT');
        written++;
        await new Promise((r) => setTimeout(r, rng.int(0, 15)));
      }
    } finally {
      await w.end();
    }
  })();
  return {
    written: () => written,
    stop: async () => {
      writing = false;
      await done;
      return written;
    },
  };
}

/** Each node's tables that differ from the root's, row by row (empty: all equal); `schema.table`, or a table of public. */
export async function differingFromRoot(root: pg.Client, clients: ReadonlyMap<string, pg.Client>, nodes: readonly string[], tables: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of nodes) {
    for (const name of tables) {
      const [schema, t] = name.includes('.') ? (name.split('.', 2) as [string, string]) : ['public', name];
      const d = await compareTable(root, clients.get(n)!, schema, t);
      if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) out.push(`${n} ${schema}.${t}: ${JSON.stringify(d).slice(0, 500)}`);
    }
  }
  return out;
}

/** Each node's sequences (of `schemas`) behind the root's: missing there, or a last_value below the root's (empty: all carried). */
export async function sequencesBehindRoot(root: pg.Client, clients: ReadonlyMap<string, pg.Client>, nodes: readonly string[], schemas: readonly string[]): Promise<string[]> {
  // The sequence's own last_value (pg_sequences says NULL for one set with is_called false).
  const values = async (c: pg.Client) => {
    const seqs = (await c.query<{ n: string; s: string }>("SELECT n.nspname AS n, s.relname AS s FROM pg_catalog.pg_class s JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace WHERE s.relkind = 'S' AND n.nspname = ANY ($1::text[])", [schemas])).rows;
    const out = new Map<string, bigint>();
    for (const { n, s } of seqs) out.set(`${n}.${s}`, BigInt((await c.query<{ v: string }>(`SELECT last_value::text AS v FROM ${qualified(n, s)}`)).rows[0]!.v));
    return out;
  };
  const onRoot = await values(root);
  const out: string[] = [];
  for (const n of nodes) {
    const there = await values(clients.get(n)!);
    for (const [s, v] of onRoot) {
      const w = there.get(s);
      if (w === undefined || w < v) out.push(`${n} ${s}: ${w ?? 'none'} < the root's ${v}`);
    }
  }
  return out;
}
