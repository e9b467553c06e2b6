/**
 * `pgconvey resync FILE TABLE...` — copy tables again from scratch on their
 * subscribers (after damage, or a failed copy), while the rest replicates.
 * The running `pgconvey run` does the copy; `status` shows its progress.
 */
import { Args, Flags } from '@oclif/core';
import { loadFile, resyncTables } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';
import { askYes, requireTerminal } from './shared/confirm.js';

export default class Resync extends PgconveyCommand {
  static override summary = 'Copy tables again from scratch on their subscribers, while the rest replicates.';
  static override description =
    "Puts each TABLE (schema.table, or table for public) back to `pending` on every subscriber of FILE that replicates it (or only on --node). The running `pgconvey run` then empties the subscriber's table and copies it anew in one transaction, merging the changes made meanwhile by snapshot, exactly as for a new table. Asks first (the subscriber's rows are replaced) unless --auto-approve.";
  static override examples = ['<%= config.bin %> resync plans/upgrade-two-node.yaml public.orders', '<%= config.bin %> resync plans/upgrade-two-node.yaml orders customers --node new_leaf --auto-approve'];
  static override strict = false;
  static override args = {
    file: Args.string({ description: 'the desired-state YAML file', required: true }),
    table: Args.string({ description: 'tables to copy again (schema.table, or table for public)', required: true }),
  };
  static override flags = {
    node: Flags.string({ description: 'only on this subscriber' }),
    queue: Flags.string({ description: 'only for this queue' }),
    'auto-approve': Flags.boolean({ description: 'do not ask for confirmation' }),
  };

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Resync);
    const { state } = await loadFile(args.file, this.workflow);
    const tables = (argv as string[]).slice(1);
    if (!flags['auto-approve']) {
      requireTerminal();
      if (!(await askYes(`Copy ${tables.join(', ')} again from scratch on ${flags.node ?? 'every subscriber'}? Their rows there are replaced.`))) {
        this.print('Resync cancelled.');
        return this.exit(1);
      }
    }
    const done = await resyncTables(state, tables, { node: flags.node, queue: flags.queue });
    for (const t of done) this.print(`  ~ ${t.table} on ${t.node} (queue ${t.queue}): ${t.previousState} → pending`);
    this.print(`\n${done.length} table(s) will be copied again by the running pgconvey run; watch with: pgconvey status ${args.file}`);
  }
}
