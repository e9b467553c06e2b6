/**
 * Schema drift between the provider's and a subscriber's table, as plan
 * checks: columns added, dropped, renamed, retyped, keys changed.
 */
import { describe, expect, it } from 'vitest';
import type { ColumnInfo, TableInfo } from '../../../src/catalog/index.js';
import type { Diagnostic } from '../../../src/kernel/index.js';
import { schemaDriftChecks } from '../../../src/planner/drift.js';
import { table } from './fixtures.js';

function drift(provider: TableInfo, subscriber: TableInfo): Diagnostic[] {
  const out: Diagnostic[] = [];
  schemaDriftChecks(provider, subscriber, { node: 'new', path: 'queues.shop.nodes.new' }, (severity, code, message, hint, path) => out.push({ severity, code, message, hint, ...(path ? { path } : {}) }));
  return out;
}
const col = (name: string, type = 'text', extra: Partial<ColumnInfo> = {}): ColumnInfo => ({ name, type, notNull: false, generated: '', hasDefault: false, ...extra });
const withColumns = (columns: ColumnInfo[], extra: Partial<TableInfo> = {}): TableInfo => ({ ...table('orders', []), columns, ...extra });
const id = col('id', 'bigint', { notNull: true });

describe('planner: schema drift', () => {
  it('says nothing when both sides match', () => {
    expect(drift(withColumns([id, col('total')]), withColumns([id, col('total')]))).toEqual([]);
  });

  it('an ADD COLUMN on the provider: the subscriber lacks it (error)', () => {
    expect(drift(withColumns([id, col('total'), col('note')]), withColumns([id, col('total')])).map((d) => [d.severity, d.code])).toEqual([['error', 'columns_missing_on_subscriber']]);
  });

  it('a RENAME on the provider: the rename to repeat, quoted exactly', () => {
    const [d, ...rest] = drift(withColumns([id, col('Total Amount', 'numeric')]), withColumns([id, col('total', 'numeric')]));
    expect(rest).toEqual([]);
    expect(d).toMatchObject({ severity: 'error', code: 'column_renamed' });
    expect(d!.hint).toContain('ALTER TABLE "public"."orders" RENAME COLUMN "total" TO "Total Amount";');
  });

  it('a missing and an extra column of other types are no rename', () => {
    expect(drift(withColumns([id, col('note', 'text')]), withColumns([id, col('total', 'numeric')])).map((d) => d.code)).toEqual(['columns_missing_on_subscriber', 'columns_extra_on_subscriber']);
  });

  it('a DROP COLUMN on the provider: a warning, an error when the column is NOT NULL without a default there', () => {
    expect(drift(withColumns([id]), withColumns([id, col('note')])).map((d) => [d.severity, d.code])).toEqual([['warning', 'columns_extra_on_subscriber']]);
    expect(drift(withColumns([id]), withColumns([id, col('note', 'text', { notNull: true, hasDefault: true })]))[0]!.severity).toBe('warning');
    expect(drift(withColumns([id]), withColumns([id, col('n', 'bigint', { notNull: true, identity: 'a' })]))[0]!.severity).toBe('warning');
    const [blocking] = drift(withColumns([id]), withColumns([id, col('note', 'text', { notNull: true })]));
    expect(blocking).toMatchObject({ severity: 'error', code: 'columns_extra_on_subscriber' });
    expect(blocking!.message).toContain('every replicated INSERT fails');
  });

  it('generated columns of the provider are not shipped, and not extra on the subscriber', () => {
    const g = col('total_x2', 'numeric', { generated: 's' });
    expect(drift(withColumns([id, col('total', 'numeric'), g]), withColumns([id, col('total', 'numeric'), g]))).toEqual([]);
  });

  it('a type change', () => {
    expect(drift(withColumns([id, col('total', 'numeric')]), withColumns([id, col('total', 'integer')])).map((d) => [d.severity, d.code])).toEqual([['warning', 'column_type_differs']]);
  });

  it('a key changed on the provider that the subscriber still enforces', () => {
    const a = col('a', 'bigint', { notNull: true });
    const b = col('b', 'bigint', { notNull: true });
    // The provider's key is (a, b); the subscriber still has (a): two rows with the same a fail there.
    expect(drift(withColumns([a, b], { primaryKey: ['a', 'b'] }), withColumns([a, b], { primaryKey: ['a'] })).map((d) => d.code)).toEqual(['subscriber_unique_not_on_provider']);
    // The other way (the subscriber's key is implied by the provider's) is fine.
    expect(drift(withColumns([a, b], { primaryKey: ['a'] }), withColumns([a, b], { primaryKey: ['a', 'b'] }))).toEqual([]);
    expect(drift(withColumns([a, b], { primaryKey: ['a'], uniqueNotNull: [['b']] }), withColumns([a, b], { primaryKey: ['a'], uniqueNotNull: [['b']] }))).toEqual([]);
  });
});
