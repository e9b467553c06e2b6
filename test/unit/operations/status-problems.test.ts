/**
 * status's problems for a subscriber whose worker fails a batch again and
 * again (a script that cannot run there): between two retries the worker has
 * reconnected and marked its piece running, and the subscription's last error
 * must still be a problem (exit 1). Seen failing in a clean-clone CI
 * (cli-execute) when the error was reported only without process rows.
 */
import { describe, expect, it } from 'vitest';
import { problemsOf, type PieceProcess, type QueueReport, type SubscriberStatus } from '../../../src/operations/index.js';

const processOf = (state: PieceProcess['state'], lastError: string | null = null): PieceProcess => ({
  process: 'host:1',
  application: 'pgconvey:worker',
  state,
  backendPid: state === 'running' ? 123 : null,
  lastError,
  lastErrorAt: lastError ? new Date() : null,
  retryAt: state === 'backing-off' ? new Date(Date.now() + 5_000) : null,
  updatedAt: new Date(),
  live: true,
});

function report(subscriber: Partial<SubscriberStatus>): QueueReport[] {
  const sub: SubscriberStatus = {
    node: 'new', database: 'new', display: 'u@h:1/new', error: null, subscribed: true, workerRunning: true, lagSeconds: 1, pendingEvents: 3,
    completedTick: '7', appliedAgeSeconds: 9, lastError: null, tables: [], workerProcesses: [processOf('running')], ...subscriber,
  };
  return [{
    queue: 'shop', reverse: false, subscribers: [sub],
    root: { node: 'old', database: 'old', display: 'u@h:1/old', error: null, queueExists: true, tickerRunning: true, lastTick: '9', lastTickAgeSeconds: 0, eventsSinceTick: 0, eventsPerSecond: 0, tickerProcesses: [processOf('running')] },
  }];
}

const failing = { message: 'script "005_tier.sql" (pgconvey execute) failed on the subscriber: type "tier" does not exist', ageSeconds: 2 };

describe('status problems of a worker held at a failing batch', () => {
  it('a healthy worker: no problem', () => {
    expect(problemsOf(report({}))).toEqual([]);
  });

  it('the worker reconnected and marks itself running, the batch still fails: the last error is a problem', () => {
    const problems = problemsOf(report({ lastError: failing }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('type "tier" does not exist');
  });

  it('no process row at all: the last error is a problem', () => {
    expect(problemsOf(report({ lastError: failing, workerRunning: false, workerProcesses: [] }))).toEqual([
      expect.stringContaining('no worker applies to new'),
      expect.stringContaining('type "tier" does not exist'),
    ]);
  });

  it('a backing-off process carries the error: reported once, as its own', () => {
    const problems = problemsOf(report({ lastError: failing, workerRunning: false, workerProcesses: [processOf('backing-off', failing.message)] }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/backing off in process host:1 .*type "tier" does not exist/);
  });
});
