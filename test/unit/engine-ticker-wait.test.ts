/**
 * The ticker daemon's wait between calls (engine/ticker.ts Ticker.waitAfter):
 * after a tick the min interval; while a recent tick (its own or a keeping-up
 * subscriber's keep_up_tick) is younger than max_lag, until it is max_lag old;
 * an idle queue (last tick older) is asked at the short poll interval.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Ticker, TICKER_MAX_WAIT_MS } from '../../src/engine/ticker.js';

function ticker(minIntervalMs: number, maxLagMs: number): Ticker {
  const t = new Ticker({} as pg.Client, 'q');
  t.quietAfterTickMs = Math.min(minIntervalMs, maxLagMs);
  t.maxLagMs = maxLagMs;
  return t;
}

describe('the ticker daemon waits', () => {
  it('the min interval after a tick of its own', () => {
    expect(ticker(20, 100).waitAfter({ tick: '7', lastTickAgeMs: 0 }, 10)).toBe(20);
    expect(ticker(0, 100).waitAfter({ tick: '7' }, 10)).toBe(10);
  });

  it('until a recent tick (a keeping-up subscriber made it) is max_lag old', () => {
    expect(ticker(20, 100).waitAfter({ tick: null, lastTickAgeMs: 15 }, 10)).toBe(85);
    expect(ticker(20, 100).waitAfter({ tick: null, lastTickAgeMs: 95 }, 10)).toBe(10);
  });

  it('the poll interval when the last tick is max_lag old or older (idle: new events are due at once), or unknown', () => {
    expect(ticker(20, 100).waitAfter({ tick: null, lastTickAgeMs: 100 }, 10)).toBe(10);
    expect(ticker(20, 100).waitAfter({ tick: null, lastTickAgeMs: 60_000 }, 10)).toBe(10);
    expect(ticker(20, 100).waitAfter({ tick: null }, 10)).toBe(10);
  });

  it('never longer than TICKER_MAX_WAIT_MS, whatever max_lag', () => {
    expect(ticker(20, 3_600_000).waitAfter({ tick: null, lastTickAgeMs: 5 }, 10)).toBe(TICKER_MAX_WAIT_MS);
  });
});
