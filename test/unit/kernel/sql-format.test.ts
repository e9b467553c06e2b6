import { describe, expect, it } from 'vitest';
import { quoteIdent, quoteQualified, sqlFormat } from '../../../src/kernel/index.js';

describe('sqlFormat', () => {
  it('quotes every identifier, keywords included', () => {
    expect(sqlFormat('SELECT %I FROM %I.%I', 'window', 'public', 'current_role')).toBe('SELECT "window" FROM "public"."current_role"');
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(quoteQualified('my.schema', 'T')).toBe('"my.schema"."T"');
    expect(sqlFormat('%I', ['a', 'b'])).toBe('"a","b"');
  });
  it('delegates literals and strings to pg-format', () => {
    expect(sqlFormat('%L %s %L %%', "it's", [1, 2], null)).toBe("'it''s' 1,2 NULL %");
  });
  it('refuses a NUL in a name and too few arguments', () => {
    expect(() => quoteIdent('a\u0000b')).toThrow();
    expect(() => sqlFormat('%I %I', 'a')).toThrow();
  });
});
