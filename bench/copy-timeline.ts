/**
 * The timeline of one pgconvey copy round (bench/copy.ts, bench/copy-probe.ts):
 * from the round's start t0 to every table `ok`, cut into the steps that take
 * the time — plan + apply, `run` starting (Node, modules, the file: its
 * `running` line), the daemons connecting (the worker's `applying`: it holds
 * its lock), the copy daemon finding the tables, each copy's set-up
 * (connections, range plan, marking, emptying, pin, snapshot: its phases_ms up
 * to stream_start), the rows' stream, the indexes and keys built again, the
 * copy recorded and its tick, the worker's batch that merges it (`ok`: the
 * state_since of the table's row, the now() of that batch), and the poll that
 * saw it. Read from the run's JSON log and the subscriber's table rows (one
 * machine, one clock).
 */

/** The steps of a round, in order; each in ms. */
export const STEPS = [
  ['plan_apply', 'plan + apply'],
  ['run_start', '`run` starting (spawn → its `running` line)'],
  ['daemons', 'daemons connecting (→ the worker holds its lock)'],
  ['copy_found', 'copy daemon finding the tables (→ the first copy begins)'],
  ['setup', "the first copy's set-up (connections, range plan, marking, emptying, pin, snapshot)"],
  ['copies', 'the streams, indexes and records of every table (first stream start → last copy recorded and ticked)'],
  ['merge', "the worker taking the batch that merges the last copy (last copy ticked → that batch's transaction begins)"],
  ['seen', 'that batch applying and committing, and the bench seeing every table `ok` (its 50 ms poll)'],
] as const;
export type Step = (typeof STEPS)[number][0];

interface CopiedLine {
  time: string;
  ms: number;
  phases_ms?: string;
}

/**
 * The steps of one round. `t0`: the round's start; `spawnAt`: when `run` was
 * spawned (after plan + apply); `endAt`: when the bench saw every table `ok`;
 * `okAt`: the latest state_since of the tables (epoch ms); `output`: the run's log.
 */
export function copyTimeline(o: { t0: number; spawnAt: number; endAt: number; okAt: number; output: string }): Partial<Record<Step, number>> {
  const lines = o.output.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as { time: string; msg: string } & Partial<CopiedLine>];
    } catch {
      return [];
    }
  });
  const at = (msg: string) => {
    const l = lines.find((x) => x.msg === msg);
    return l ? Date.parse(l.time) : NaN;
  };
  const copied = lines.filter((l) => l.msg === 'copied table' && typeof l.ms === 'number').map((l) => {
    const end = Date.parse(l.time);
    const phases = Object.fromEntries((l.phases_ms ?? '').split(' ').filter(Boolean).map((p) => [p.split(':')[0]!, Number(p.split(':')[1])]));
    return { begin: end - l.ms!, end, streamStart: phases.stream_start !== undefined ? end - l.ms! + phases.stream_start : NaN };
  });
  if (!copied.length) return {};
  const first = copied.reduce((a, c) => (c.begin < a.begin ? c : a));
  const lastEnd = Math.max(...copied.map((c) => c.end));
  const running = at('running');
  const applying = at('applying');
  return {
    plan_apply: o.spawnAt - o.t0,
    run_start: running - o.spawnAt,
    daemons: applying - running,
    copy_found: first.begin - applying,
    setup: first.streamStart - first.begin,
    // A batch of small tables (copyTableBatch) logs no phases: its copies are counted from the batch's start.
    copies: lastEnd - (Number.isFinite(first.streamStart) ? first.streamStart : first.begin),
    merge: o.okAt - lastEnd,
    seen: o.endAt - o.okAt,
  };
}

/** The subscriber's latest `ok` (state_since, epoch ms) of the tables: the SQL for it. */
export const OK_AT_SQL = 'SELECT extract(epoch FROM max(state_since)) * 1000 AS ok FROM pgconvey.subscriber_table';
