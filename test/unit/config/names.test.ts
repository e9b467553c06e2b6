import { describe, expect, it } from 'vitest';
import { isNameProblem, matchesPattern, parseNamePattern, type NamePattern } from '../../../src/config/index.js';

const parse = (text: string): NamePattern => {
  const p = parseNamePattern(text);
  if (isNameProblem(p)) throw new Error(p.message);
  return p;
};

describe('name patterns', () => {
  it.each([
    ['public.*', 'public', 'orders', true],
    ['public.*', 'billing', 'orders', false],
    ['public.order?', 'public', 'orders', true],
    ['public.order?', 'public', 'order', false],
    ['public.log_[0-9]*', 'public', 'log_2024', true],
    ['public.log_[0-9]*', 'public', 'log_x', false],
    ['public.log_[!0-9]*', 'public', 'log_x', true],
    ['Public.Orders', 'public', 'orders', true], // unquoted folds to lower case
    ['"Sales"."Order Items"', 'Sales', 'Order Items', true],
    ['"Sales"."Order Items"', 'sales', 'order items', false],
    ['"a.b".c', 'a.b', 'c', true],
    ['"we""ird".t', 'we"ird', 't', true],
    ['*.*', 'anything', 'at_all', true],
    ['public.a.b', '', '', 'invalid_name'],
  ] as const)('%s matches %s.%s: %s', (text, schema, name, expected) => {
    if (typeof expected === 'string') {
      const p = parseNamePattern(text);
      expect(isNameProblem(p) && p.code).toBe(expected);
      return;
    }
    expect(matchesPattern(parse(text), schema, name)).toBe(expected);
  });

  it('knows a plain name from a glob and gives the exact parts', () => {
    expect(parse('public.orders')).toMatchObject({ isGlob: false, exact: { schema: 'public', name: 'orders' } });
    expect(parse('public.*').isGlob).toBe(true);
    expect(parse('public.*').exact).toBeUndefined();
  });

  it.each([
    ['orders', 'unqualified_name'],
    ['.orders', 'invalid_name'],
    ['public.', 'invalid_name'],
    ['public."unterminated', 'invalid_name'],
    ['public.""', 'invalid_name'],
    ['public.[abc', 'invalid_glob'],
    ['public.[]', 'invalid_glob'],
    ['public.abc]', 'invalid_glob'],
    ['public.order items', 'invalid_name'],
    ['', 'invalid_name'],
  ])('rejects %j as %s', (text, code) => {
    const p = parseNamePattern(text);
    expect(isNameProblem(p) ? p.code : 'accepted').toBe(code);
  });
});
