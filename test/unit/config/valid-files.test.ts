/**
 * The shipped examples in plans/ validate and normalise to what they say.
 */
import { describe, expect, it } from 'vitest';
import { loadDesiredState } from '../../../src/config/index.js';

describe('example plans', () => {
  it('plans/upgrade-two-node.yaml: a root on the old server, a leaf on the new one', async () => {
    const result = await loadDesiredState('plans/upgrade-two-node.yaml', {});
    expect(result.diagnostics).toEqual([]);
    const state = result.state!;
    expect(state.databases.map((d) => [d.name, d.display])).toEqual([
      ['old', 'postgres@127.0.0.1:5432/shop'],
      ['new', 'postgres@127.0.0.1:5433/shop'],
    ]);
    const q = state.queues[0]!;
    expect(q.nodes).toEqual([
      { name: 'old_root', database: 'old', type: 'root' },
      { name: 'new_leaf', database: 'new', type: 'leaf', provider: 'old_root' },
    ]);
    expect(q.tables.include.map((p) => p.text)).toEqual(['public.*']);
    expect(q.tables.entries[0]!.pattern.exact).toEqual({ schema: 'public', name: 'audit_log' });
    expect(q.tables.entries[0]!.options).toEqual({ key: ['event_id'] });
    expect(q.daemons.ticker.maxLagMs).toBe(100);
    expect(q.daemons.ticker.idlePeriodMs).toBe(30_000);
    expect(state.prepare).toEqual({ roles: 'copy', schema: 'copy', schemaObjects: 'tables' });
  });

  it('plans/cascade.yaml: root → branch → leaf, with queue-level overrides', async () => {
    const result = await loadDesiredState('plans/cascade.yaml', { DC1_PASSWORD: 'a', DC2_PASSWORD: 'b' });
    expect(result.diagnostics).toEqual([]);
    const q = result.state!.queues[0]!;
    expect(q.nodes.map((n) => `${n.name}:${n.type}:${n.provider ?? '-'}`)).toEqual(['root_dc1:root:-', 'branch_dc2:branch:root_dc1', 'reporting_dc2:leaf:branch_dc2']);
    expect(q.daemons.worker.pollIntervalMs).toBe(100);
    expect(q.daemons.ticker.maxEvents).toBe(1000);
    expect(result.state!.daemons.worker.pollIntervalMs).toBe(50);
    expect(result.state!.databases[0]!.connection).toMatchObject({ user: 'replicator', password: 'a', host: 'db1.dc1.internal', port: 5432, dbname: 'billing', sslmode: 'require' });
  });

  it('interpolates ${VAR}, ${VAR:-default} and the $${ escape', async () => {
    const { loadDesiredStateFromText } = await import('../../../src/config/index.js');
    const text = [
      'version: 1',
      'databases:',
      '  a: "host=${H} dbname=${DB:-shop} application_name=x$${y}"',
      '  b: { host: "${H}", port: "${P:-6543}", dbname: shop }',
      'queues:',
      '  q:',
      '    nodes:',
      '      r: { database: a, type: root }',
      '      l: { database: b, type: leaf, provider: r }',
      '    tables: { include: ["public.*"] }',
    ].join('\n');
    const result = loadDesiredStateFromText('inline.yaml', text, { H: 'db.example' });
    expect(result.diagnostics).toEqual([]);
    expect(result.state!.databases[0]!.connection).toEqual({ host: 'db.example', dbname: 'shop', application_name: 'x${y}' });
    expect(result.state!.databases[1]!.connection).toEqual({ host: 'db.example', port: 6543, dbname: 'shop' });
  });
});
