/**
 * `pgconvey execute SCRIPT.sql [--file FILE] [--queue Q]` — run a DDL script
 * on a queue's root in one transaction with the queue event that carries it,
 * so every subscriber runs it at exactly that position, once per script
 * name; `--mark-applied NODE` records instead that it is applied on that
 * subscriber already.
 */
import { Args, Flags } from '@oclif/core';
import { executeFile, loadFile } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';

export default class Execute extends PgconveyCommand {
  static override summary = 'Run a DDL script on the root and, at the same queue position, on every subscriber.';
  static override description =
    "Runs SCRIPT on the queue's root in ONE transaction that records it (by its file name and the sha256 of its text) and queues an event carrying it: every subscriber's worker runs the same text exactly there — after the row changes committed before it, before those committed after — in the transaction of that batch, once. Tables whose columns change are captured again in the same transaction. A script already executed under that name with the same text is skipped (exit 0); with another text it is refused. Refused, with nothing done: scripts that change rows of replicated tables, drop or rename one, or change its key. A script that fails on a subscriber holds that subscriber's replication at it (`status` shows the error) until it can run there; --mark-applied NODE records that its effect is already on NODE, whose worker then skips it.";
  static override examples = [
    '<%= config.bin %> execute migrations/042_add_discount.sql --file plans/upgrade-two-node.yaml',
    '<%= config.bin %> execute 042_add_discount.sql --file plans/app.yaml --queue shop',
    '<%= config.bin %> execute 042_add_discount.sql --file plans/app.yaml --mark-applied new_leaf',
  ];
  static override args = { script: Args.string({ description: 'the SQL script (its file name is its name)', required: true }) };
  static override flags = {
    file: Flags.string({ description: 'the desired-state YAML file', default: 'pgconvey.yaml' }),
    queue: Flags.string({ description: 'the queue (needed when the file has several)' }),
    'mark-applied': Flags.string({ description: 'do not run it: record it as applied on this subscriber node (its effect is there already)' }),
    json: Flags.boolean({ description: 'print the result as JSON' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Execute);
    this.json = flags.json;
    const { state } = await loadFile(flags.file, this.workflow);
    const r = await executeFile(state, args.script, { queue: flags.queue, markAppliedOn: flags['mark-applied'] });
    if (flags.json) return this.print(JSON.stringify(r, null, 2));
    const what: Record<typeof r.outcome, string> = {
      applied: `executed ${r.script} on ${r.node} (queue ${r.queue}); every subscriber runs it at this position — watch with: pgconvey status ${flags.file}`,
      skipped: `${r.script} was already applied on ${r.node} (queue ${r.queue}), skipping`,
      marked: `recorded ${r.script} as applied on ${r.node} (queue ${r.queue}): its worker skips it`,
      'already-marked': `${r.script} is already recorded as applied on ${r.node} (queue ${r.queue})`,
    };
    this.print(what[r.outcome]);
  }
}
