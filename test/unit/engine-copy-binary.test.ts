/**
 * copy-binary.ts's decision, on column types as the catalogs give them: binary
 * only when every column is safe on both sides and of the same type there.
 */
import { describe, expect, it } from 'vitest';
import { binaryCopySafe, typesSignature, type ColumnType, type ColumnTypes } from '../../src/engine/copy-binary.js';

const base = (name: string, over: Partial<ColumnType> = {}): ColumnType => ({
  name,
  type: 'integer',
  baseOid: 23,
  baseName: 'int4',
  baseSchema: 'pg_catalog',
  baseKind: 'b',
  baseCategory: 'N',
  send: 'int4send',
  receive: 'int4recv',
  sendOid: 2407,
  receiveOid: 2406,
  elemOid: 0,
  elemName: null,
  elemKind: null,
  ...over,
});
const types = (...cs: ColumnType[]): ColumnTypes => new Map(cs.map((c) => [c.name, c]));
const int4Array = (name: string) => base(name, { type: 'integer[]', baseOid: 1007, baseName: '_int4', baseCategory: 'A', send: 'array_send', receive: 'array_recv', elemOid: 23, elemName: 'int4', elemKind: 'b' });

describe('binary COPY: which tables', () => {
  it('takes built-in safe types, their arrays, enums', () => {
    const enumCol = base('m', { type: 'mood', baseOid: 16400, baseName: 'mood', baseSchema: 'public', baseKind: 'e', baseCategory: 'E', send: 'enum_send', receive: 'enum_recv' });
    const t = types(base('a'), int4Array('b'), enumCol);
    expect(binaryCopySafe(t, types(base('a'), int4Array('b'), { ...enumCol, baseOid: 17000 }), ['a', 'b', 'm'])).toBe(true);
  });
  it('refuses a type differing between the sides, a missing column, no columns', () => {
    expect(binaryCopySafe(types(base('a')), types(base('a', { type: 'bigint', baseOid: 20, baseName: 'int8', send: 'int8send', receive: 'int8recv' })), ['a'])).toBe(false);
    expect(binaryCopySafe(types(base('a')), types(base('a', { type: 'integer(5)' })), ['a'])).toBe(false);
    expect(binaryCopySafe(types(base('a')), types(), ['a'])).toBe(false);
    expect(binaryCopySafe(types(), types(), [])).toBe(false);
  });
  it('refuses composites, arrays of user types, unlisted built-ins, extension types, types without send/receive', () => {
    const composite = base('c', { type: 'pair', baseOid: 16500, baseName: 'pair', baseSchema: 'public', baseKind: 'c', send: 'record_send', receive: 'record_recv' });
    const enumArray = base('e', { type: 'mood[]', baseOid: 16401, baseName: '_mood', baseSchema: 'public', baseCategory: 'A', send: 'array_send', receive: 'array_recv', elemOid: 16400, elemName: 'mood', elemKind: 'e' });
    const interval = base('i', { type: 'interval', baseOid: 1186, baseName: 'interval', send: 'interval_send', receive: 'interval_recv' });
    const regclass = base('r', { type: 'regclass', baseOid: 2205, baseName: 'regclass', send: 'regclasssend', receive: 'regclassrecv' });
    const hstore = base('h', { type: 'hstore', baseOid: 16600, baseName: 'hstore', baseSchema: 'public', send: 'hstore_send', receive: 'hstore_recv' });
    const noSend = base('n', { sendOid: 0, send: '-' });
    const intervalArray = base('ia', { type: 'interval[]', baseOid: 1187, baseName: '_interval', baseCategory: 'A', send: 'array_send', receive: 'array_recv', elemOid: 1186, elemName: 'interval', elemKind: 'b' });
    for (const c of [composite, enumArray, interval, regclass, hstore, noSend, intervalArray]) {
      expect({ column: c.name, binary: binaryCopySafe(types(base('id'), c), types(base('id'), c), ['id', c.name]) }).toEqual({ column: c.name, binary: false });
    }
  });
  it('signs the types independently of their order', () => {
    expect(typesSignature(types(base('a'), base('b')))).toBe(typesSignature(types(base('b'), base('a'))));
    expect(typesSignature(types(base('a')))).not.toBe(typesSignature(types(base('a', { type: 'bigint' }))));
  });
});
