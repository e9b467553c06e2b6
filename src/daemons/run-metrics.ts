/**
 * Prometheus metrics of `pgconvey run` (prom-client): counters fed by the
 * daemons as they work (batches, events, ticks, copies, failed copies, errors, batch
 * duration) and gauges refreshed from the databases every few seconds (lag in
 * seconds and events, tables per state, copy progress, daemons running),
 * served as text on `/metrics` by a small HTTP server. Loaded only when
 * metrics are asked for (metrics.ts: createRunMetrics), so a `run` without
 * them does not load prom-client at start.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DaemonEvents } from './metrics.js';
import { TABLE_STATES, type TableState } from '../engine/index.js';
import type { StatusReport } from '../operations/index.js';

export class RunMetrics implements DaemonEvents {
  readonly registry = new Registry();
  private readonly batches = new Counter({ name: 'pgconvey_batches_applied_total', help: 'Batches applied on a subscriber', labelNames: ['queue', 'node'], registers: [this.registry] });
  private readonly events = new Counter({ name: 'pgconvey_events_applied_total', help: 'Row events applied on a subscriber', labelNames: ['queue', 'node'], registers: [this.registry] });
  private readonly batchSeconds = new Histogram({
    name: 'pgconvey_batch_duration_seconds',
    help: 'Time to read and apply one batch',
    labelNames: ['queue', 'node'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly ticks = new Counter({ name: 'pgconvey_ticks_total', help: 'Ticks made by this process', labelNames: ['queue'], registers: [this.registry] });
  private readonly copiedRows = new Counter({ name: 'pgconvey_copy_rows_total', help: 'Rows copied by initial copies of this process', labelNames: ['queue', 'node'], registers: [this.registry] });
  private readonly copiedBytes = new Counter({ name: 'pgconvey_copy_bytes_total', help: 'Bytes copied by initial copies of this process', labelNames: ['queue', 'node'], registers: [this.registry] });
  private readonly copyFailures = new Counter({ name: 'pgconvey_copy_failures_total', help: 'Initial copies that failed (each is retried with backoff)', labelNames: ['queue', 'node', 'table'], registers: [this.registry] });
  private readonly errors = new Counter({ name: 'pgconvey_errors_total', help: 'Errors met by a daemon (each is retried or stops it)', labelNames: ['component'], registers: [this.registry] });
  private readonly waiting = new Gauge({
    name: 'pgconvey_worker_waiting',
    help: '1 while a worker waits at a batch it cannot apply (code: script_failed_on_subscriber, subscriber_schema_mismatch); status has the error',
    labelNames: ['queue', 'node', 'code'],
    registers: [this.registry],
  });
  private readonly lagSeconds = new Gauge({ name: 'pgconvey_lag_seconds', help: 'Age of the last tick a subscriber has applied', labelNames: ['queue', 'node'], registers: [this.registry] });
  private readonly lagEvents = new Gauge({ name: 'pgconvey_lag_events', help: 'Events the provider holds that a subscriber has not applied', labelNames: ['queue', 'node'], registers: [this.registry] });
  private readonly tables = new Gauge({ name: 'pgconvey_tables', help: 'Tables of a subscription per state', labelNames: ['queue', 'node', 'state'], registers: [this.registry] });
  private readonly copyProgress = new Gauge({ name: 'pgconvey_copy_progress_ratio', help: 'Rows copied / rows expected of a table being copied', labelNames: ['queue', 'node', 'table'], registers: [this.registry] });
  private readonly up = new Gauge({ name: 'pgconvey_daemon_running', help: '1 when the ticker or worker holds its lock (in any process)', labelNames: ['queue', 'node', 'daemon'], registers: [this.registry] });
  private readonly reachable = new Gauge({ name: 'pgconvey_database_reachable', help: '1 when the last status read of a node succeeded', labelNames: ['queue', 'node'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'pgconvey_process_' });
  }

  batchApplied(queue: string, node: string, events: number, seconds: number): void {
    this.batches.inc({ queue, node });
    this.events.inc({ queue, node }, events);
    this.batchSeconds.observe({ queue, node }, seconds);
    this.workerWaiting(queue, node, null);
  }

  workerWaiting(queue: string, node: string, code: string | null): void {
    for (const c of ['script_failed_on_subscriber', 'subscriber_schema_mismatch']) this.waiting.set({ queue, node, code: c }, c === code ? 1 : 0);
  }

  ticked(queue: string): void {
    this.ticks.inc({ queue });
  }

  tableCopied(queue: string, node: string, _table: string, rows: number, bytes: number): void {
    this.copiedRows.inc({ queue, node }, rows);
    this.copiedBytes.inc({ queue, node }, bytes);
  }

  copyFailed(queue: string, node: string, table: string): void {
    this.copyFailures.inc({ queue, node, table });
  }

  error(component: string): void {
    this.errors.inc({ component });
  }

  /** Sets the gauges from a status report. */
  observe(report: StatusReport): void {
    this.tables.reset();
    this.copyProgress.reset();
    for (const q of report.queues) {
      this.reachable.set({ queue: q.queue, node: q.root.node }, q.root.error ? 0 : 1);
      if (q.root.tickerRunning !== null) this.up.set({ queue: q.queue, node: q.root.node, daemon: 'ticker' }, q.root.tickerRunning ? 1 : 0);
      for (const s of q.subscribers) {
        const labels = { queue: q.queue, node: s.node };
        this.reachable.set(labels, s.error ? 0 : 1);
        if (s.workerRunning !== null) this.up.set({ ...labels, daemon: 'worker' }, s.workerRunning ? 1 : 0);
        if (s.lagSeconds !== null) this.lagSeconds.set(labels, s.lagSeconds);
        if (s.pendingEvents !== null) this.lagEvents.set(labels, s.pendingEvents);
        const counts = new Map<TableState, number>();
        for (const t of s.tables) {
          counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
          if (t.state === 'copying' && t.rowsExpected) this.copyProgress.set({ ...labels, table: `${t.schema}.${t.table}` }, Math.min(1, t.rowsCopied / t.rowsExpected));
        }
        for (const state of TABLE_STATES) this.tables.set({ ...labels, state }, counts.get(state) ?? 0);
      }
    }
  }

  /** Serves `/metrics` (and `/healthz`) on the port; resolves once listening. */
  async serve(port: number, host = '0.0.0.0'): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url === '/metrics') {
        this.registry
          .metrics()
          .then((text) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(text))
          .catch((err: unknown) => res.writeHead(500).end(String(err)));
      } else if (req.url === '/healthz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('see /metrics\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
