/**
 * A scenario of the exactness test: what one seed generates (tables and a
 * workload timeline) for one pair of servers, the subsets the shrinker tries
 * (fewer tables, transactions, items), and its printed reproduction: the
 * CREATE statements and the SQL of every remaining transaction in timeline
 * order, with each one's session settings.
 */
import { createRng } from '../random.js';
import { qi } from './comparer.js';
import { preludeFor, generateTables, type TableDef } from './schema.js';
import type { Environment } from './types.js';
import { generateWorkload, settingsSql, type TimelineEvent, type Txn } from './workload.js';

export interface Scenario {
  seed: number;
  env: Environment;
  excluded: string[];
  tables: TableDef[];
  writers: number;
  txns: Txn[];
  timeline: TimelineEvent[];
}

export interface GenerateOptions {
  excluded: Set<string>;
  /** Transactions to generate (default 60). */
  transactions?: number;
}

export function generateScenario(seed: number, env: Environment, opts: GenerateOptions): Scenario {
  const r = createRng(seed);
  const allowed = (f: string) => !opts.excluded.has(f);
  const tables = generateTables(r, env, { allowed });
  const w = generateWorkload(r, env, tables, { allowed, transactions: opts.transactions ?? 60 });
  return { seed, env, excluded: [...opts.excluded], tables, writers: w.writers, txns: w.txns, timeline: w.timeline };
}

/** The scenario without some transactions, tables or items (items are "txn:index"). */
export function restrict(s: Scenario, keep: { txns?: Set<number>; tables?: Set<string>; dropItems?: Set<string> }): Scenario {
  const tables = keep.tables ? s.tables.filter((t) => keep.tables!.has(t.name) && (!t.parent || keep.tables!.has(t.parent))) : s.tables;
  const names = new Set(tables.map((t) => t.name));
  const txns = s.txns.map((t) => ({
    ...t,
    items: t.items.map((it, i) => (keep.dropItems?.has(`${t.id}:${i}`) || !it || !it.tables.every((n) => names.has(n)) ? null : it)) as Txn['items'],
  }));
  const timeline = s.timeline.filter((e) => !('txn' in e) || !keep.txns || keep.txns.has(e.txn));
  return { ...s, tables, txns, timeline };
}

/** Transactions that still appear in the timeline. */
export function liveTxns(s: Scenario): number[] {
  return [...new Set(s.timeline.flatMap((e) => ('txn' in e && e.kind === 'begin' ? [e.txn] : [])))];
}

export function countItems(s: Scenario): number {
  const live = new Set(liveTxns(s));
  return s.txns.filter((t) => live.has(t.id)).reduce((n, t) => n + t.items.filter(Boolean).length, 0);
}

/** The reproduction: schema, then the timeline as SQL per writer connection. */
export function reproduction(s: Scenario): string {
  const out: string[] = [];
  out.push(`-- exactness reproduction: seed ${s.seed}, PostgreSQL ${s.env.sourceMajor} -> ${s.env.targetMajor}${s.excluded.length ? `, excluded features: ${s.excluded.join(', ')}` : ''}`);
  out.push('-- replay: EXACTNESS_SEED=' + s.seed + (s.excluded.length ? ` EXACTNESS_EXCLUDE=${s.excluded.join(',')}` : ''));
  out.push('-- schema (run on both servers; the tables are captured with their primary key and copied while the writers run):');
  for (const p of preludeFor(s.tables)) out.push(`${p};`);
  for (const t of s.tables) for (const d of t.ddl) out.push(`${d};`);
  out.push('-- timeline: [wN] runs on writer N\'s own connection; [engine] lines are pgconvey actions (tick, worker step, restart, start of the initial copy)');
  const byId = new Map(s.txns.map((t) => [t.id, t]));
  let pendingEngine: string[] = [];
  const flush = () => {
    if (pendingEngine.length) out.push(`[engine] ${pendingEngine.join(', ')}`);
    pendingEngine = [];
  };
  for (const e of s.timeline) {
    if (!('txn' in e)) {
      pendingEngine.push(e.kind === 'copy' ? 'COPY STARTS' : e.kind);
      continue;
    }
    const t = byId.get(e.txn)!;
    if (e.kind === 'item' && !t.items[e.index]) continue;
    flush();
    if (e.kind === 'begin') out.push(`[w${t.writer}] ${settingsSql(t.settings)}; BEGIN;`);
    else if (e.kind === 'item') out.push(`[w${t.writer}] ${t.items[e.index]!.sql};`);
    else out.push(`[w${t.writer}] ${t.end === 'commit' ? 'COMMIT' : 'ROLLBACK'};`);
  }
  flush();
  out.push('[engine] settle (tick, apply until idle and every table ok), then compare');
  return out.join('\n');
}

export function tableLabel(t: TableDef): string {
  return `public.${qi(t.name)}`;
}
