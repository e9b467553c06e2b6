/**
 * The engine's migrations are numbered 0001, 0002, … without a gap: the
 * engine version is the newest number, and the refusal to downgrade compares
 * it with the previous release's (its newest migration less one). Two
 * branches each adding a migration must be renumbered when merged.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('engine migrations', () => {
  it('are numbered from 0001 on, one each, without a gap', () => {
    const numbers = readdirSync('src/engine/sql')
      .filter((f) => /^\d{4}_.+\.sql$/.test(f))
      .map((f) => Number(f.slice(0, 4)))
      .sort((a, b) => a - b);
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
  });
});
