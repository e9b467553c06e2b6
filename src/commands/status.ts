/**
 * `pgconvey status FILE` — per queue and node: tickers and workers running,
 * last tick, lag in seconds and events, events/s, and per table its state
 * with copy progress. `--watch` redraws; `--json` for scripts. Exit 1 when
 * something needs attention (a daemon not running, a database unreachable,
 * a table with an error).
 */
import { Args, Flags } from '@oclif/core';
import { renderStatusHuman, statusToJson } from '../render/index.js';
import { collectStatus, loadFile } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';
import { durationFlag, requireNode } from './shared/flags.js';

export default class Status extends PgconveyCommand {
  static override summary = 'Show replication status: daemons, lag, and table copy progress.';
  static override description =
    'Reads every database of FILE: for each queue the root (ticker running, last tick, events per second) and each subscriber (worker running, lag in seconds and in events, last batch applied), and each table with its state (pending, copying with a progress bar, rate and ETA, catching-up, ok). Exits 1 when something needs attention, 0 when all is well.';
  static override examples = ['<%= config.bin %> status plans/upgrade-two-node.yaml', '<%= config.bin %> status plans/upgrade-two-node.yaml --watch', '<%= config.bin %> status plans/upgrade-two-node.yaml --json | jq .queues[0].subscribers[0].lag_seconds'];
  static override args = { file: Args.string({ description: 'the desired-state YAML file', required: true }) };
  static override flags = {
    node: Flags.string({ description: 'only the queues and subscribers of this node' }),
    json: Flags.boolean({ description: 'print the status as JSON', exclusive: ['watch'] }),
    watch: Flags.boolean({ description: 'redraw until interrupted' }),
    interval: Flags.string({ description: 'how often --watch redraws', default: '2s' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Status);
    this.json = flags.json;
    const { state } = await loadFile(args.file, this.workflow);
    requireNode(state, flags.node, args.file);
    const intervalMs = durationFlag('interval', flags.interval, 'write e.g. 500ms, 2s or 1min');
    if (!flags.watch) {
      const report = await collectStatus(state, { node: flags.node });
      this.print(flags.json ? JSON.stringify(statusToJson(report), null, 2) : renderStatusHuman(report));
      if (report.problems.length) this.exit(1);
      return;
    }
    for (;;) {
      const report = await collectStatus(state, { node: flags.node });
      process.stdout.write('\x1b[H\x1b[2J');
      this.print(`${renderStatusHuman(report)}\n\n${report.takenAt.toISOString()} — every ${flags.interval}, Ctrl-C to stop`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
