/**
 * `pgconvey switchover FILE --to NODE` — the upgrade's last step: fence
 * writes on the old node, drain, move sequences, verify, optionally set up
 * reverse replication, hand the new node over; `--to` the root switches
 * back over the reverse queue. Ends sessions, so it asks first (or takes
 * --auto-approve). Exit 0 done or nothing to do, 1 refused or failed.
 */
import { Args, Command, Flags } from '@oclif/core';
import { loadDesiredState } from '../config/index.js';
import { parseDuration, scrubSecrets } from '../kernel/index.js';
import { SWITCHOVER_DEFAULTS, SwitchoverError, resolveTarget, switchover, type SwitchoverReport } from '../operations/index.js';
import { renderDiagnostics, renderEndedSessions, renderSwitchoverStart, renderSwitchoverStep, renderSwitchoverSummary, switchoverToJson } from '../render/index.js';
import { askYes } from './shared/confirm.js';
import { printKnownError } from './shared/plan-file.js';
import { guardOutput } from './shared/output-guard.js';

export default class Switchover extends Command {
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

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Switchover);
    const loaded = await loadDesiredState(args.file);
    guardOutput(loaded.secrets);
    const print = (text: string) => process.stdout.write(`${scrubSecrets(text, loaded.secrets)}\n`);
    const fail = (code: string, message: string, hint: string, report: SwitchoverReport | null = null) => {
      if (flags.json) print(JSON.stringify(report ? switchoverToJson(report, { code, message, hint }) : { error: { code, message, hint } }, null, 2));
      else print(`error ${code}: ${message}\n    hint: ${hint}`);
      return this.exit(1);
    };
    const maxLagMs = parseDuration(flags['max-lag']);
    const timeoutMs = parseDuration(flags.timeout);
    for (const [flag, value, ms] of [['max-lag', flags['max-lag'], maxLagMs], ['timeout', flags.timeout, timeoutMs]] as const) {
      if (ms === undefined) return fail('invalid_duration', `--${flag} "${value}" is not a duration`, 'write a number with a unit: 500ms, 5s, 1min');
    }
    if (!loaded.state) {
      print(renderDiagnostics(loaded.diagnostics));
      return this.exit(1);
    }
    const options = { queue: flags.queue, to: flags.to, reverse: flags.reverse, maxLagMs: maxLagMs!, sequenceMargin: flags['sequence-margin'], timeoutMs: timeoutMs!, verify: flags.verify as 'counts' | 'none', refreshMatviews: flags['refresh-matviews'] };
    try {
      resolveTarget(loaded.state, options);
      if (!flags['auto-approve'] && !process.stdin.isTTY) {
        return fail('confirmation_needed', 'there is no terminal to confirm on, and a switchover ends sessions', 'run again with --auto-approve');
      }
      let started = false;
      const report = await switchover(loaded.state, options, {
        onStep: (step, so) => {
          if (flags.json) return;
          if (!started) print(renderSwitchoverStart(so));
          started = true;
          print(renderSwitchoverStep(step));
          if (step.step === 'fence') print(renderEndedSessions(so.endedSessions));
        },
        confirm: flags['auto-approve'] ? undefined : (so) => this.ask(so),
      });
      if (flags.json) print(JSON.stringify(switchoverToJson(report), null, 2));
      else print(renderSwitchoverSummary(report));
    } catch (err) {
      if (err instanceof SwitchoverError) return fail(err.code, err.message, err.hint, err.report);
      if (printKnownError(print, err)) return this.exit(1);
      throw err;
    }
  }

  private async ask(report: SwitchoverReport): Promise<boolean> {
    return askYes(`\nMake "${report.to.node}" writable? Both nodes refuse writes until the hand-over, "${report.from.node}" stays read-only, and their other sessions are ended.`);
  }
}
