/**
 * `pgconvey status FILE` — per queue and node: tickers and workers running,
 * last tick, lag in seconds and events, events/s, and per table its state
 * with copy progress. `--watch` redraws; `--json` for scripts. Exit 1 when
 * something needs attention (a daemon not running, a database unreachable,
 * a table with an error).
 */
import { Args, Command, Flags } from '@oclif/core';
import { parseDuration } from '../kernel/index.js';
import { collectStatus } from '../operations/index.js';
import { renderStatusHuman, statusToJson } from '../render/index.js';
import { loadFile } from './shared/plan-file.js';

export default class Status extends Command {
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
    const { print, state } = await loadFile(args.file);
    if (!state) return this.exit(1);
    if (flags.node && !state.queues.some((q) => q.nodes.some((n) => n.name === flags.node))) {
      print(`error unknown_node: no node "${flags.node}" in ${args.file}\n    hint: name one of: ${[...new Set(state.queues.flatMap((q) => q.nodes.map((n) => n.name)))].join(', ')}`);
      return this.exit(1);
    }
    const intervalMs = parseDuration(flags.interval);
    if (intervalMs === undefined) {
      print(`error invalid_duration: --interval "${flags.interval}" is not a duration\n    hint: write e.g. 500ms, 2s or 1min`);
      return this.exit(1);
    }
    if (!flags.watch) {
      const report = await collectStatus(state, { node: flags.node });
      print(flags.json ? JSON.stringify(statusToJson(report), null, 2) : renderStatusHuman(report));
      if (report.problems.length) this.exit(1);
      return;
    }
    for (;;) {
      const report = await collectStatus(state, { node: flags.node });
      process.stdout.write('\x1b[H\x1b[2J');
      print(`${renderStatusHuman(report)}\n\n${report.takenAt.toISOString()} — every ${flags.interval}, Ctrl-C to stop`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
