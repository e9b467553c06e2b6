/**
 * `pgconvey execute`: runs a DDL script on a queue's root so that every
 * subscriber runs it at the same queue position (engine/ddl.ts), once per
 * script name; or records on one subscriber that a script is applied there
 * already (its effect made by hand), so its worker skips it.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type pg from 'pg';
import type { DesiredState, QueueSpec } from '../config/index.js';
import { connect } from '../db/index.js';
import { executeScript, markScriptApplied, ScriptError } from '../engine/index.js';
import { closest } from '../kernel/index.js';

export interface ExecuteOptions {
  /** The queue (needed when the file has more than one). */
  queue?: string;
  /** Instead of executing: record the script as applied on this subscriber node. */
  markAppliedOn?: string;
}

export interface ExecuteReport {
  queue: string;
  /** The root it ran on, or the subscriber it was marked applied on. */
  node: string;
  script: string;
  checksum: string;
  outcome: 'applied' | 'skipped' | 'marked' | 'already-marked';
}

/** Reads the script (named by its file name) and executes it on the queue's root (or marks it applied on a subscriber). */
export async function executeFile(state: DesiredState, scriptPath: string, options: ExecuteOptions = {}): Promise<ExecuteReport> {
  let sql: string;
  try {
    sql = await readFile(scriptPath, 'utf8');
  } catch (err) {
    throw new ScriptError('script_unreadable', `cannot read script ${scriptPath}: ${(err as Error).message}`, 'check the path', { cause: err });
  }
  if (!sql.trim()) throw new ScriptError('script_unreadable', `script ${scriptPath} is empty`, 'write the DDL to run into it');
  const name = basename(scriptPath);
  const queue = pickQueue(state, options.queue);
  const target = options.markAppliedOn ? subscriberNode(queue, options.markAppliedOn) : queue.nodes.find((n) => n.type === 'root')!;
  const database = state.databases.find((d) => d.name === target.database)!;
  let client: pg.Client | undefined;
  try {
    client = await connect(database.connection, 'execute');
    if (options.markAppliedOn) {
      const marked = await markScriptApplied(client, queue.name, target.name, name, sql);
      return { queue: queue.name, node: target.name, script: name, checksum: '', outcome: marked ? 'marked' : 'already-marked' };
    }
    const r = await executeScript(client, queue.name, name, sql);
    return { queue: queue.name, node: target.name, script: name, checksum: r.checksum, outcome: r.outcome };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

function pickQueue(state: DesiredState, name: string | undefined): QueueSpec {
  if (name) {
    const q = state.queues.find((x) => x.name === name);
    if (q) return q;
    const guess = closest(name, state.queues.map((x) => x.name));
    throw new ScriptError('execute_unknown_queue', `the file ${state.file} has no queue "${name}"`, `${guess ? `did you mean "${guess}"? ` : ''}queues: ${state.queues.map((x) => x.name).join(', ')}`);
  }
  if (state.queues.length !== 1) {
    throw new ScriptError('execute_queue_ambiguous', `the file ${state.file} has ${state.queues.length} queues`, `name one with --queue: ${state.queues.map((x) => x.name).join(', ')}`);
  }
  return state.queues[0]!;
}

function subscriberNode(queue: QueueSpec, node: string) {
  const n = queue.nodes.find((x) => x.name === node && x.type !== 'root');
  if (n) return n;
  const names = queue.nodes.filter((x) => x.type !== 'root').map((x) => x.name);
  const guess = closest(node, names);
  throw new ScriptError('unknown_node', `queue "${queue.name}" has no subscriber "${node}"`, `${guess ? `did you mean "${guess}"? ` : ''}subscribers: ${names.join(', ') || 'none'}`);
}
