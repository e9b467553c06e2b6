/**
 * The compare report as people and scripts read it: one line per table (✓,
 * ✗ with its ranges and keys, or not comparable yet), lists capped with a
 * count of the rest, a summary line, and the JSON field names of
 * docs/compare.md.
 */
import { describe, expect, it } from 'vitest';
import type { CompareReport, TableComparison } from '../../../src/operations/index.js';
import { compareSummaryLine, compareToJson, renderCompareHuman, renderCompareProgress } from '../../../src/render/index.js';

const plain = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, '');

const base = {
  queue: 'shop',
  direction: 'forward' as const,
  node: 'new',
  providerNode: 'old',
  provider: 'postgres@old:5432/shop',
  subscriber: 'postgres@new:5432/shop',
  state: 'ok',
  compared: true,
  chunks: 3,
  moreDifferingRanges: 0,
  writersPausedMs: 35,
  writersLongestPauseMs: 35,
  lockAttempts: 1,
  waitedFor: [],
  seconds: 4.1,
};

const equalTable: TableComparison = { ...base, table: 'public.orders', keyColumns: ['id'], providerRows: 1_234_567, subscriberRows: 1_234_567, equal: true, differingRanges: [] };

const differentTable: TableComparison = {
  ...base,
  writersPausedMs: 81,
  writersLongestPauseMs: 52,
  lockAttempts: 2,
  waitedFor: [
    { pid: 4242, preparedGid: null, user: 'alice', applicationName: 'billing', state: 'idle in transaction', since: new Date('2024-05-01T10:00:00Z'), waitedMs: 8_150 },
  ],
  table: 'public.lines',
  keyColumns: ['code', 'line'],
  providerRows: 1000,
  subscriberRows: 999,
  equal: false,
  differingRanges: [
    {
      from: { code: 'B-2', line: '17' },
      to: { code: 'Z', line: '3' },
      providerRows: 500,
      subscriberRows: 499,
      missing: [{ code: 'B-2', line: '17' }],
      extra: [],
      changed: [{ code: 'C', line: '1' }],
      missingCount: 1,
      extraCount: 0,
      changedCount: 3,
    },
  ],
  moreDifferingRanges: 2,
};

const copyingTable: TableComparison = {
  ...base,
  table: 'public.archive',
  keyColumns: ['id'],
  state: 'copying',
  compared: false,
  providerRows: null,
  subscriberRows: null,
  equal: null,
  chunks: 0,
  writersPausedMs: null,
  writersLongestPauseMs: null,
  lockAttempts: null,
  seconds: null,
  differingRanges: [],
};

const report: CompareReport = { file: 'plans/shop.yaml', equal: false, tables: [equalTable, differentTable, copyingTable] };

describe('compare rendering', () => {
  it('prints a line per table, the differing ranges with their keys, and a summary', () => {
    expect(plain(renderCompareHuman(report)).split('\n')).toEqual([
      'queue shop: old (postgres@old:5432/shop) → new (postgres@new:5432/shop)',
      '✓ public.orders  1,234,567 rows  (4.1 s, writers paused 35 ms)',
      '✗ public.lines  provider 1,000 rows, subscriber 999  (4.1 s, writers paused 81 ms in 2 lock attempts, longest 52 ms)',
      '    waited 8.2 s for transaction PID 4242 (application "billing", user alice, idle in transaction, since 2024-05-01T10:00:00.000Z) before locking',
      '    from (code, line)=(B-2, 17) to (code, line)=(Z, 3): 1 missing on the subscriber, 3 changed',
      '      missing (code, line)=(B-2, 17)',
      '      changed (code, line)=(C, 1)',
      '      … and 2 more changed',
      '    … and 2 more differing ranges, not narrowed',
      '- public.archive  not comparable yet: copying',
      '',
      'Different: 1 table equal, 1 different, 1 not comparable yet.',
    ]);
    expect(compareSummaryLine({ ...report, equal: true, tables: [equalTable] })).toBe('Equal: 1 table equal, 0 different.');
  });

  it('has the JSON shape of docs/compare.md', () => {
    const json = compareToJson(report) as { tables: Array<Record<string, unknown>> };
    expect(json).toMatchObject({ format_version: 1, file: 'plans/shop.yaml', equal: false });
    expect(Object.keys(json.tables[1]!)).toEqual([
      'name', 'queue', 'direction', 'node', 'provider_node', 'provider', 'subscriber', 'key_columns', 'state', 'compared', 'equal', 'provider_rows', 'subscriber_rows', 'chunks',
      'differing_ranges', 'more_differing_ranges', 'writers_paused_ms', 'writers_longest_pause_ms', 'lock_attempts', 'waited_for', 'seconds',
    ]);
    expect(json.tables[1]!.waited_for).toEqual([
      { pid: 4242, prepared_gid: null, user: 'alice', application_name: 'billing', state: 'idle in transaction', since: '2024-05-01T10:00:00.000Z', waited_ms: 8_150 },
    ]);
    expect(json.tables[1]!.differing_ranges).toEqual([
      {
        from: { code: 'B-2', line: '17' },
        to: { code: 'Z', line: '3' },
        provider_rows: 500,
        subscriber_rows: 499,
        missing: [{ code: 'B-2', line: '17' }],
        extra: [],
        changed: [{ code: 'C', line: '1' }],
        missing_count: 1,
        extra_count: 0,
        changed_count: 3,
      },
    ]);
    expect(json.tables[2]).toMatchObject({ name: 'public.archive', compared: false, equal: null, state: 'copying' });
  });

  it('prints the heading of a reverse pair after a switchover', () => {
    const reverse = { ...equalTable, direction: 'reverse' as const, queue: 'shop_reverse', node: 'old', providerNode: 'new', provider: 'postgres@new:5432/shop', subscriber: 'postgres@old:5432/shop' };
    expect(plain(renderCompareHuman({ file: 'f', equal: true, tables: [reverse] })).split('\n')[0]).toBe(
      'queue shop_reverse (reverse replication after the switchover): new (postgres@new:5432/shop) → old (postgres@old:5432/shop)',
    );
  });

  it('shows which transaction compare waits for before it locks a table', () => {
    const waitingFor = [{ pid: 77, preparedGid: null, user: 'app', applicationName: 'shop', state: 'idle in transaction', since: new Date('2024-05-01T10:00:00Z') }];
    expect(renderCompareProgress({ queue: 'shop', node: 'new', table: 'public.big', rowsDone: 0, rowsEstimated: null, chunksDone: 0, seconds: 3, waitingFor })).toBe(
      'new: public.big  waiting for transaction PID 77 (application "shop", user app, idle in transaction, since 2024-05-01T10:00:00.000Z) to end before locking (writers are not held up)  3.0 s',
    );
  });

  it('shows progress against the estimate', () => {
    expect(renderCompareProgress({ queue: 'shop', node: 'new', table: 'public.big', rowsDone: 1_250_000, rowsEstimated: 4_000_000, chunksDone: 25, seconds: 12 })).toBe(
      'new: public.big  1,250,000 / ~4,000,000 rows (31%)  12 s',
    );
  });
});
