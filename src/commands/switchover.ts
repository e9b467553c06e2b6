/**
 * `pgconvey switchover FILE --to NODE` — the upgrade's last step: fence
 * writes on the old node, drain, move sequences, verify, optionally set up
 * reverse replication, hand the new node over; `--to` the root switches
 * back over the reverse queue. Ends sessions, so it asks first (or takes
 * --auto-approve). Exit 0 done or nothing to do, 1 refused or failed.
 */
import { Args, Flags } from '@oclif/core';
import { errorToJson, renderEndedSessions, renderSwitchoverStart, renderSwitchoverStep, renderSwitchoverSummary, switchoverToJson } from '../render/index.js';
import { SWITCHOVER_DEFAULTS, SwitchoverError, loadFile, resolveTarget, switchover, type SwitchoverReport } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';
import { askYes, requireTerminal } from './shared/confirm.js';
import { durationFlag } from './shared/flags.js';

export default class Switchover extends PgconveyCommand {
  static override summary = 'Make NODE the writable node of a queue: fence the old one, drain, move sequences, verify, hand over.';
  static override description =
    'With --to a leaf of the queue\'s root: checks that every table is replicating and the lag is below --max-lag, makes the root read-only for new sessions and ends its other sessions (pgconvey\'s own excepted), waits until the leaf has applied everything, moves its sequences past the root\'s plus --sequence-margin, compares row counts, with --reverse sets up replication back to the root, and makes the leaf writable. With --to the root: the same steps back over the reverse queue, which is then dropped. Running it again finishes an interrupted switchover, or says there is nothing to do.';
  static override examples = [
    '<%= config.bin %> switchover plans/myapp.yaml --to new --reverse',
    '<%= config.bin %> switchover plans/myapp.yaml --to old            # switch back',
    '<%= config.bin %> switchover plans/myapp.yaml --to new --max-lag 2s --auto-approve --json',
  ];
  static override args = { file: Args.string({ description: 'the desired-state YAML file', required: true }) };
  static override flags = {
    to: Flags.string({ description: 'the node that becomes writable', required: true }),
    queue: Flags.string({ description: 'the queue (needed when the file has several)' }),
    reverse: Flags.boolean({ description: 'replicate from the new node back to the old one, so switching back loses nothing (refused up front, changing nothing, when the roles of the file lack the rights the way back needs: see the reverse_* warnings of plan)' }),
    'max-lag': Flags.string({ description: 'refuse when the subscriber is further behind than this', default: '5s' }),
    verify: Flags.string({
      description: 'counts: compare row counts of every table while writes are fenced (grows with the data); none: skip it, e.g. after a compare just before',
      options: ['counts', 'none'],
      default: 'counts',
    }),
    'sequence-margin': Flags.integer({ description: 'increments sequences end past the old node\'s values', default: SWITCHOVER_DEFAULTS.sequenceMargin, min: 0 }),
    timeout: Flags.string({ description: 'how long to wait for sessions to end and the queue to drain', default: '60s' }),
    'refresh-matviews': Flags.boolean({ description: "refresh the materialized views of the node taking writes before the hand-over (inside the write window); --no-refresh-matviews leaves them as they are and says so", default: true, allowNo: true }),
    'auto-approve': Flags.boolean({ description: 'do not ask for confirmation' }),
    json: Flags.boolean({ description: 'print the result as JSON' }),
  };

  /** Under --json a failure after some steps comes with the report of what was done. */
  protected override errorJson(err: unknown): unknown {
    if (err instanceof SwitchoverError && err.report) return switchoverToJson(err.report, err);
    return errorToJson(err);
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Switchover);
    this.json = flags.json;
    const maxLagMs = durationFlag('max-lag', flags['max-lag']);
    const timeoutMs = durationFlag('timeout', flags.timeout);
    const { state } = await loadFile(args.file, this.workflow);
    const options = { queue: flags.queue, to: flags.to, reverse: flags.reverse, maxLagMs, sequenceMargin: flags['sequence-margin'], timeoutMs, verify: flags.verify as 'counts' | 'none', refreshMatviews: flags['refresh-matviews'] };
    resolveTarget(state, options);
    if (!flags['auto-approve']) requireTerminal('there is no terminal to confirm on, and a switchover ends sessions', 'run again with --auto-approve');
    let started = false;
    const report = await switchover(state, options, {
      onStep: (step, so) => {
        if (flags.json) return;
        if (!started) this.print(renderSwitchoverStart(so));
        started = true;
        this.print(renderSwitchoverStep(step));
        if (step.step === 'fence') this.print(renderEndedSessions(so.endedSessions));
      },
      confirm: flags['auto-approve'] ? undefined : (so) => this.ask(so),
    });
    if (flags.json) this.print(JSON.stringify(switchoverToJson(report), null, 2));
    else this.print(renderSwitchoverSummary(report));
  }

  private async ask(report: SwitchoverReport): Promise<boolean> {
    return askYes(`\nMake "${report.to.node}" writable? Both nodes refuse writes until the hand-over, "${report.from.node}" stays read-only, and their other sessions are ended.`);
  }
}
