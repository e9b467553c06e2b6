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
  node: 'new',
  provider: 'postgres@old:5432/shop',
  subscriber: 'postgres@new:5432/shop',
  state: 'ok',
  compared: true,
  chunks: 3,
  moreDifferingRanges: 0,
  writersPausedMs: 35,
  seconds: 4.1,
};

const equalTable: TableComparison = { ...base, table: 'public.orders', keyColumns: ['id'], providerRows: 1_234_567, subscriberRows: 1_234_567, equal: true, differingRanges: [] };

const differentTable: TableComparison = {
  ...base,
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
  seconds: null,
  differingRanges: [],
};

const report: CompareReport = { file: 'plans/shop.yaml', equal: false, tables: [equalTable, differentTable, copyingTable] };

describe('compare rendering', () => {
  it('prints a line per table, the differing ranges with their keys, and a summary', () => {
    expect(plain(renderCompareHuman(report)).split('\n')).toEqual([
      'queue shop: postgres@old:5432/shop → new (postgres@new:5432/shop)',
      '✓ public.orders  1,234,567 rows  (4.1 s, writers paused 35 ms)',
      '✗ public.lines  provider 1,000 rows, subscriber 999  (4.1 s, writers paused 35 ms)',
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
      'name', 'queue', 'node', 'provider', 'subscriber', 'key_columns', 'state', 'compared', 'equal', 'provider_rows', 'subscriber_rows', 'chunks',
      'differing_ranges', 'more_differing_ranges', 'writers_paused_ms', 'seconds',
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

  it('shows progress against the estimate', () => {
    expect(renderCompareProgress({ queue: 'shop', node: 'new', table: 'public.big', rowsDone: 1_250_000, rowsEstimated: 4_000_000, chunksDone: 25, seconds: 12 })).toBe(
      'new: public.big  1,250,000 / ~4,000,000 rows (31%)  12 s',
    );
  });
});
