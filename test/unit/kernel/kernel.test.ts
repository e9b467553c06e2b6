import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DURATION_PATTERN, closest, formatDuration, maskDsn, parseDuration, scrubSecrets } from '../../../src/kernel/index.js';

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1min', 60_000],
    ['2h', 7_200_000],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['5', '5 s', '5sec', '-1s', 's', '1m'])('%j is not a duration', (text) => expect(parseDuration(text)).toBeUndefined());

  it('formats milliseconds back', () => {
    expect([250, 2000, 1500, 90_000, 7_200_000].map(formatDuration)).toEqual(['250ms', '2s', '1.5s', '1.5min', '2h']);
  });

  it('uses the same pattern as the JSON schema', () => {
    const schema = JSON.parse(readFileSync('schemas/desired-state.schema.json', 'utf8'));
    expect(schema.definitions.duration.pattern).toBe(DURATION_PATTERN);
  });
});

describe('secret masking', () => {
  it.each([
    ['postgres://app:hunter2@db/shop', 'postgres://app:***@db/shop'],
    ['postgres://db/shop?user=app&password=hunter2&sslmode=require', 'postgres://db/shop?user=app&password=***&sslmode=require'],
    ['host=db password=hunter2 dbname=shop', 'host=db password=*** dbname=shop'],
    ["host=db password = 'hun ter2' dbname=shop", 'host=db password = *** dbname=shop'],
    ['host=db dbname=shop', 'host=db dbname=shop'],
    ['postgres://app:p@ss/w#rd@db/shop', 'postgres://app:***@db/shop'],
  ])('%s → %s', (dsn, masked) => expect(maskDsn(dsn)).toBe(masked));

  it('scrubs known secrets, longest first', () => {
    expect(scrubSecrets('a hunter2 b hunter', ['hunter', 'hunter2', ''])).toBe('a *** b ***');
    expect(scrubSecrets('text x', ['x'])).toBe('text x');
  });
});

describe('did you mean', () => {
  it('suggests close candidates only', () => {
    expect(closest('provder', ['database', 'type', 'provider'])).toBe('provider');
    expect(closest('zzz', ['database', 'type', 'provider'])).toBeUndefined();
  });
});
