/**
 * `pgconvey compare FILE [TABLE...]` — row counts and checksums of every
 * replicated table on provider and subscriber, at the same queue position,
 * with the key ranges and keys that differ. Read-only apart from a brief
 * SHARE lock per table and a forced tick. Exit 0 when all equal, 1 on any
 * difference or error.
 */
import { Args, Flags } from '@oclif/core';
import { compareToJson, renderCompareHuman, renderCompareProgress } from '../render/index.js';
import { COMPARE_DEFAULTS, compareState, loadFile, type CompareProgress } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';

export default class Compare extends PgconveyCommand {
  static override summary = 'Prove the copy is exact: row counts and checksums per table on both sides, at one queue position.';
  static override description =
    'For every table replicated to each node of FILE, against its provider (a node under a branch against the branch; --node X only X; --nodes A,B compares B with A, any two nodes of one queue) — or only the TABLEs named: schema.table, or table for public — locks the table on the root in SHARE mode for at most 100 ms (waiting first, without holding up anyone, for transactions that hold it), waits until each compared node has applied everything up to that point (branches carry the root\'s ticks), takes a snapshot on both sides, and compares row counts and checksums chunk by chunk in key order. A chunk that differs is narrowed to the exact keys missing, extra or changed on the subscriber. After a switchover with --reverse, compares the new node with the old one through the reverse queue. Needs the apply worker running. Exit 0 when every table is equal, 1 on a difference or an error.';
  static override examples = [
    '<%= config.bin %> compare plans/upgrade-two-node.yaml',
    '<%= config.bin %> compare plans/upgrade-two-node.yaml public.orders customers --json',
    '<%= config.bin %> compare plans/upgrade-two-node.yaml --queue shop --node new --chunk-rows 20000',
    '<%= config.bin %> compare plans/cascade.yaml --nodes root,leaf1',
  ];
  static override usage = 'compare FILE [TABLE...] [--queue NAME] [--node NODE | --nodes A,B] [--json] [--chunk-rows N] [--lock-wait SECONDS]';
  static override strict = false;
  static override args = {
    file: Args.string({ description: 'the desired-state YAML file', required: true }),
    table: Args.string({ description: 'tables to compare (schema.table, or table for public); default all replicated tables' }),
  };
  static override flags = {
    queue: Flags.string({ description: 'only this queue' }),
    node: Flags.string({ description: 'only this node, against its provider (a node under a branch: against the branch)' }),
    nodes: Flags.string({ description: 'two nodes of one queue, A,B: B against A, at one tick of the root (any two nodes of a cascade)' }),
    json: Flags.boolean({ description: 'print the result as JSON' }),
    'chunk-rows': Flags.integer({ description: 'rows per checksum chunk', default: COMPARE_DEFAULTS.chunkRows, min: 100 }),
    'lock-wait': Flags.integer({
      description: 'seconds to wait per table for transactions holding it before compare can lock it (writers are not held up meanwhile)',
      default: COMPARE_DEFAULTS.lockWaitMs / 1000,
      min: 1,
    }),
  };

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Compare);
    this.json = flags.json;
    const { state } = await loadFile(args.file, this.workflow);
    const progress = progressPrinter();
    try {
      const report = await compareState(state, {
        tables: (argv as string[]).slice(1),
        queue: flags.queue,
        node: flags.node,
        nodes: flags.nodes === undefined ? undefined : flags.nodes.split(',').map((n) => n.trim()),
        chunkRows: flags['chunk-rows'],
        lockWaitMs: flags['lock-wait'] * 1000,
        onProgress: progress.update,
      });
      progress.clear();
      this.print(flags.json ? JSON.stringify(compareToJson(report), null, 2) : renderCompareHuman(report));
      if (!report.equal) this.exit(1);
    } finally {
      progress.clear();
    }
  }
}

/**
 * Progress of long tables on stderr: on a terminal one line rewritten at most
 * five times a second; otherwise a line every ten seconds, so logs stay short.
 */
function progressPrinter(): { update: (p: CompareProgress) => void; clear: () => void } {
  const tty = Boolean(process.stderr.isTTY);
  const every = tty ? 200 : 10_000;
  let last = Date.now();
  let shown = false;
  let lastWaiting = '';
  return {
    update(p) {
      // Waiting for a transaction is shown at once, and again when whom compare waits for changes.
      const waiting = p.waitingFor?.length ? `${p.table}:${p.waitingFor.map((w) => w.pid ?? w.preparedGid).join(',')}` : '';
      const news = waiting !== '' && waiting !== lastWaiting;
      lastWaiting = waiting;
      if (!news && Date.now() - last < every) return;
      last = Date.now();
      if (tty) {
        process.stderr.write(`\r\u001b[2K${renderCompareProgress(p)}`);
        shown = true;
      } else process.stderr.write(`${renderCompareProgress(p)}\n`);
    },
    clear() {
      if (shown) process.stderr.write('\r\u001b[2K');
      shown = false;
    },
  };
}
