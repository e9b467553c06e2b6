/**
 * Step 1, `preconditions`: before anything changes — the target subscribes
 * to the queue, every table of the subscription is `ok`, the lag is below
 * --max-lag, and (with --reverse, or on the way back) the way back can work:
 * every table and sequence exists on the new node, and the roles may do
 * what it needs. Returns the tables the later steps work on.
 */
import type pg from 'pg';
import { introspectNode } from '../../catalog/index.js';
import { capturedSequences, isSubscribed, queueStatus, reverseQueueName, tableStatus, unappliedTickAgeMs } from '../../engine/index.js';
import { sqlFormat, type QualifiedName } from '../../kernel/index.js';
import { reversePrivilegeProblems } from '../../planner/privileges.js';
import { SwitchoverError } from './error.js';
import type { SwitchoverRun } from './run.js';

/** The forward direction: `root` → `consumer` (the target leaf), `resuming` when writes are fenced already. */
export async function forwardPreconditions(run: SwitchoverRun, old: pg.Client, neu: pg.Client, resuming: boolean): Promise<QualifiedName[]> {
  const queue = run.topology.queue.name;
  const consumer = run.topology.target.name;
  return run.step('preconditions', async () => {
    const position = (await queueStatus(old, queue)).find((s) => s.consumer === consumer);
    if (!position || !(await isSubscribed(neu, queue, consumer))) {
      throw new SwitchoverError('switchover_not_subscribed', `node "${consumer}" is not a subscriber of queue "${queue}"`, 'run `pgconvey apply FILE`, then let the worker copy and catch up');
    }
    const tables = await okTables(neu, queue, consumer);
    const lag = resuming ? 0 : await unappliedTickAgeMs(old, queue, position.consumerTick!);
    if (lag > run.options.maxLagMs) {
      throw new SwitchoverError('switchover_lag_too_high', `node "${consumer}" is ${Math.round(lag)} ms behind queue "${queue}" (--max-lag ${run.options.maxLagMs} ms)`, 'make sure the ticker and the worker run, wait until the lag is small, or raise --max-lag');
    }
    if (run.options.reverse) {
      await checkReversible(old, neu, queue, tables);
      await checkReverseRights(run, old, neu, consumer, tables);
    }
    return { value: tables, detail: `${tables.length} tables ok, lag ${Math.round(lag)} ms${resuming ? ' (resuming: writes already fenced)' : ''}` };
  });
}

/** The way back: the reverse queue on `leaf` → the root; `resuming` when the reverse queue is gone already or `leaf` is fenced. */
export async function rollbackPreconditions(run: SwitchoverRun, old: pg.Client, neu: pg.Client, leaf: string, resuming: boolean): Promise<QualifiedName[]> {
  const queue = reverseQueueName(run.topology.queue.name);
  const consumer = run.topology.root.name;
  return run.step('preconditions', async () => {
    const tables = await okTables(old, queue, consumer);
    let lag = 0;
    if (!resuming) {
      const position = (await queueStatus(neu, queue)).find((s) => s.consumer === consumer);
      if (!position) throw new SwitchoverError('switchover_not_subscribed', `"${consumer}" is not a consumer of the reverse queue "${queue}" on "${leaf}"`, 'switch over again with --reverse, or repair the reverse queue by hand');
      lag = await unappliedTickAgeMs(neu, queue, position.consumerTick!);
    }
    // The rights may have changed since --reverse checked them: the switch back lifts the old node's fence and drops the reverse capture.
    if (!resuming) await checkReverseRights(run, old, neu, leaf, tables);
    if (lag > run.options.maxLagMs) {
      throw new SwitchoverError('switchover_lag_too_high', `"${consumer}" is ${Math.round(lag)} ms behind the reverse queue "${queue}" (--max-lag ${run.options.maxLagMs} ms)`, 'make sure the reverse ticker and worker run, wait until the lag is small, or raise --max-lag');
    }
    return { value: tables, detail: `${tables.length} tables ok, lag ${Math.round(lag)} ms${resuming ? ' (resuming)' : ''}` };
  });
}

/** The subscription's tables, all of which must be `ok`. */
export async function okTables(subscriber: pg.Client, queue: string, consumer: string): Promise<QualifiedName[]> {
  const status = await tableStatus(subscriber, queue, consumer);
  const waiting = status.filter((s) => s.state !== 'ok');
  if (waiting.length) {
    throw new SwitchoverError(
      'switchover_tables_not_ready',
      `${waiting.length} table(s) of subscription "${consumer}" are not replicating yet: ${waiting.map((s) => `${s.schema}.${s.table} (${s.state})`).join(', ')}`,
      waiting.some((s) => s.state === 'held')
        ? 'a held table waits for a schema change on the subscriber (`pgconvey status` says what to run); keep the worker running until every table is ok, then switch over'
        : 'keep the worker running until every table is ok (its copy finished and merged), then switch over',
    );
  }
  return status.map((s) => ({ schema: s.schema, name: s.table }));
}

/** Before fencing: every table and sequence the reverse queue will carry exists on the new node. */
async function checkReversible(old: pg.Client, neu: pg.Client, queue: string, tables: readonly QualifiedName[]): Promise<void> {
  const sequences = await capturedSequences(old, queue);
  const names = [...tables.map((t) => sqlFormat('%I.%I', t.schema, t.name)), ...sequences.map((s) => sqlFormat('%I.%I', s.schema, s.name))];
  const { rows } = await neu.query<{ name: string }>('SELECT n AS name FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL', [names]);
  if (rows.length) {
    throw new SwitchoverError('switchover_reverse_impossible', `reverse replication needs ${rows.map((r) => r.name).join(', ')} on the new node, which lacks them`, 'create them there, or switch over without --reverse');
  }
}

/**
 * Before fencing: the roles of the file may do what the way back needs
 * (planner/privileges, the rule plan warns by): the new node captures its
 * tables, the old one applies them in replica mode and gets its fence
 * lifted at the switch back. Refuses, changing nothing, when one may not —
 * a way back that cannot apply would otherwise lose every write made on
 * the new node while claiming to keep it.
 */
async function checkReverseRights(run: SwitchoverRun, old: pg.Client, neu: pg.Client, leaf: string, tables: readonly QualifiedName[]): Promise<void> {
  const t = run.topology;
  const [oldCatalog, newCatalog] = [await introspectNode(old), await introspectNode(neu)];
  const ownerOf = (schema: string, name: string, list: Array<{ schema: string; name: string; owner: string }>) => list.find((x) => x.schema === schema && x.name === name)?.owner ?? '';
  const sequences = await capturedSequences(old, t.queue.name);
  const problems = reversePrivilegeProblems({
    old: { node: t.root.name, catalog: oldCatalog },
    neu: { node: leaf, catalog: newCatalog },
    tables: tables.map((x) => ({ schema: x.schema, name: x.name, owner: ownerOf(x.schema, x.name, oldCatalog.tables) })),
    sequences: sequences.map((x) => ({ schema: x.schema, name: x.name, owner: ownerOf(x.schema, x.name, oldCatalog.sequences) })),
  });
  if (!problems.length) return;
  throw new SwitchoverError(
    'switchover_reverse_not_permitted',
    `the way back to "${t.root.name}" cannot work: ${problems.map((p) => `${p.message} (${p.code})`).join('; ')}`,
    `nothing was changed. ${problems.map((p) => p.hint).join('; ')}. Or switch over without --reverse (a switch back then loses what is written on "${leaf}")`,
  );
}
