/**
 * A short account of what a desired-state file declares, for `validate`:
 * databases (password-free), each queue's node tree, and its selections.
 */
import chalk from 'chalk';
import type { DesiredState, QueueSpec, Selection } from '../config/index.js';

export function summarizeDesiredState(state: DesiredState): Record<string, unknown> {
  return {
    databases: state.databases.map((d) => ({ name: d.name, connection: d.display })),
    queues: state.queues.map((q) => ({
      name: q.name,
      nodes: q.nodes.map((n) => ({ name: n.name, type: n.type, database: n.database, ...(n.provider ? { provider: n.provider } : {}) })),
      tables: selectionSummary(q.tables),
      sequences: selectionSummary(q.sequences),
    })),
    prepare: state.prepare,
  };
}

function selectionSummary(s: Selection<unknown>) {
  return { include: s.include.map((p) => p.text), exclude: s.exclude.map((p) => p.text), entries: s.entries.map((e) => e.pattern.text) };
}

export function renderDesiredStateSummary(state: DesiredState): string {
  const lines: string[] = [];
  lines.push(`  ${chalk.bold('databases:')} ${state.databases.map((d) => `${d.name} (${d.display})`).join(', ')}`);
  for (const q of state.queues) lines.push(...renderQueue(q));
  const prep = Object.entries(state.prepare).filter(([, v]) => v === 'copy').map(([k]) => k);
  if (prep.length) lines.push(`  ${chalk.bold('prepare:')} copy ${prep.join(' and ')} to subscribers`);
  return lines.join('\n');
}

function renderQueue(q: QueueSpec): string[] {
  const lines = [`  ${chalk.bold('queue')} ${q.name}:`];
  const children = (provider: string | undefined) => q.nodes.filter((n) => n.provider === provider && (provider !== undefined || n.type === 'root'));
  const walk = (provider: string | undefined, depth: number) => {
    for (const n of children(provider)) {
      lines.push(`    ${'  '.repeat(depth)}${depth ? '└─ ' : ''}${n.name} (${n.type} on ${n.database})`);
      walk(n.name, depth + 1);
    }
  };
  walk(undefined, 0);
  lines.push(`    tables: ${describeSelection(q.tables)}`);
  lines.push(`    sequences: ${describeSelection(q.sequences) || 'none'}`);
  return lines;
}

function describeSelection(s: Selection<unknown>): string {
  const parts: string[] = [];
  if (s.include.length) parts.push(`include ${s.include.map((p) => p.text).join(', ')}`);
  if (s.exclude.length) parts.push(`exclude ${s.exclude.map((p) => p.text).join(', ')}`);
  if (s.entries.length) parts.push(`${s.entries.length} listed (${s.entries.map((e) => e.pattern.text).join(', ')})`);
  return parts.join('; ');
}
