/**
 * The status view on plain data: daemons running or not, lag, a table being
 * copied with its progress bar, rate and ETA, problems listed; and the JSON
 * field names scripts rely on.
 */
import chalk from 'chalk';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TableState } from '../../../src/engine/table-state.js';
import type { StatusReport } from '../../../src/operations/index.js';
import { formatSeconds, renderStatusHuman, statusToJson } from '../../../src/render/index.js';

const table = (name: string, state: TableState, extra: object = {}) => ({
  schema: 'public',
  table: name,
  state,
  since: new Date('2026-01-01T00:00:00Z'),
  rowsCopied: 0,
  bytesCopied: 0,
  rowsExpected: null,
  rowsPerSecond: null,
  etaSeconds: null,
  lastError: null,
  ...extra,
});

const REPORT: StatusReport = {
  file: 'shop.yaml',
  takenAt: new Date('2026-01-01T00:00:00Z'),
  problems: ['queue "shop": no worker applies to new_leaf; start pgconvey run'],
  queues: [
    {
      queue: 'shop',
      reverse: false,
      root: { node: 'old_root', database: 'old', display: 'app@old:5432/shop', error: null, queueExists: true, tickerRunning: true, lastTick: '812', lastTickAgeSeconds: 0.04, eventsSinceTick: 3, eventsPerSecond: 412.4 },
      subscribers: [
        {
          node: 'new_leaf',
          database: 'new',
          display: 'app@new:5432/shop',
          error: null,
          subscribed: true,
          workerRunning: false,
          lagSeconds: 2.5,
          pendingEvents: 1234,
          completedTick: '800',
          appliedAgeSeconds: 2.4,
          lastError: { message: 'cannot connect to app@old:5432/shop: connection refused', ageSeconds: 1.5 },
          tables: [table('orders', 'copying', { rowsCopied: 450_000, rowsExpected: 1_000_000, rowsPerSecond: 90_000, etaSeconds: 6.1 }), table('customers', 'ok'), table('audit', 'pending')],
        },
      ],
    },
  ],
};

describe('status rendering', () => {
  beforeAll(() => {
    chalk.level = 0;
  });

  it('shows daemons, lag, copy progress and problems at a glance', () => {
    expect(renderStatusHuman(REPORT)).toBe(
      [
        'queue shop',
        '  root old_root app@old:5432/shop  ticker running  last tick 812 40 ms ago  412 events/s',
        '    → new_leaf app@new:5432/shop  worker not running  lag 2.5 s, 1,234 events  applied 2.4 s ago',
        '        last error 1.5 s ago: cannot connect to app@old:5432/shop: connection refused',
        '        public.orders     copying  █████████░░░░░░░░░░░ 45%  450,000 / 1,000,000 rows  90,000 rows/s  ETA 6.1 s',
        '        public.customers  ok',
        '        public.audit      pending',
        '',
        '1 problem(s):',
        '  - queue "shop": no worker applies to new_leaf; start pgconvey run',
      ].join('\n'),
    );
  });

  it('gives scripts numbers in seconds, events and rows', () => {
    const json = statusToJson(REPORT) as { healthy: boolean; queues: Array<{ subscribers: Array<Record<string, unknown> & { tables: Array<Record<string, unknown>> }> }> };
    expect(json.healthy).toBe(false);
    expect(json.queues[0]!.subscribers[0]).toMatchObject({ worker_running: false, lag_seconds: 2.5, pending_events: 1234, last_error: { age_seconds: 1.5 } });
    expect(json.queues[0]!.subscribers[0]!.tables[0]).toMatchObject({ table: 'public.orders', state: 'copying', rows_copied: 450_000, eta_seconds: 6.1 });
    expect([formatSeconds(0.25), formatSeconds(75), formatSeconds(3725), formatSeconds(7500), formatSeconds(null)]).toEqual(['250 ms', '75.0 s', '62 min 5 s', '2 h 5 min', '–']);
  });
});
