/**
 * `pgconvey apply FILE|PLANFILE` — plans (for a saved plan: plans afresh and
 * goes on only when the fresh plan equals it; refused when tampered, made for
 * other databases or stale), shows the plan, asks (unless
 * --auto-approve or a saved plan, which was reviewed already), and runs the
 * actions in order with progress (a copy_schema in the background, beside
 * the ones after it). Every action is idempotent: an apply that
 * died half way is finished by running it again.
 */
import { Args, Flags } from '@oclif/core';
import { PgconveyError } from '../kernel/index.js';
import { ApplyProgress, renderPlanHuman } from '../render/index.js';
import { ApplyFailedError, applyPlan, planFile, planFromSaved, readSavedPlan } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';
import { askYes, requireTerminal } from './shared/confirm.js';

export default class Apply extends PgconveyCommand {
  static override summary = 'Make the databases match FILE (plan, confirm, run the actions), or run a saved PLANFILE.';
  static override description =
    'Makes the same plan as `pgconvey plan`, prints it and asks for "yes" (or takes --auto-approve), then runs each action in order, printing its progress. Actions that stop replicating something are destructive and need --allow-destructive when not confirmed interactively. Running apply again after a failure finishes the work; when everything matches it prints "No changes." and exits 0. Given a plan saved by `pgconvey plan --out`, apply plans again from the same file and the live databases and runs — without asking — only when that fresh plan equals the saved one, action by action and parameter by parameter; an edited plan is refused as plan_tampered and one that no longer matches as plan_stale, changing nothing. What runs is the fresh plan, and nothing executable is taken from the file (pg_dump is found again, as at plan time).';
  static override examples = [
    '<%= config.bin %> apply plans/upgrade-two-node.yaml',
    '<%= config.bin %> apply plans/upgrade-two-node.yaml --auto-approve',
    '<%= config.bin %> apply upgrade.plan.json   # made by: pgconvey plan plans/upgrade-two-node.yaml --out upgrade.plan.json',
  ];
  static override args = { file: Args.string({ description: 'the desired-state YAML file, or a plan saved by `plan --out`', required: true }) };
  static override flags = {
    'auto-approve': Flags.boolean({ description: 'do not ask for confirmation' }),
    'allow-destructive': Flags.boolean({ description: 'allow actions that stop replicating something, without asking' }),
  };

  /** A failure while the actions run prints on stderr (the progress lines stay on stdout); any other with the plan on stdout. */
  protected override errorStream(err: unknown): NodeJS.WritableStream {
    return err instanceof ApplyFailedError ? process.stderr : process.stdout;
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Apply);
    const saved = await readSavedPlan(args.file);
    const planned = saved ? await planFromSaved(args.file, saved, this.workflow) : await planFile(args.file, this.workflow);
    const { plan } = planned;
    this.print(renderPlanHuman(plan, saved ? saved.file : args.file));
    if (plan.errored) return this.exit(1);
    if (!plan.actions.length) return;
    const destructive = plan.actions.filter((a) => a.destructive).length;
    if (!flags['auto-approve'] && !saved) {
      requireTerminal();
      if (!(await askYes(`\nApply ${plan.actions.length} actions${destructive ? ` (${destructive} destructive)` : ''}?`))) {
        this.print('Apply cancelled.');
        return this.exit(1);
      }
    } else if (destructive && !flags['allow-destructive']) {
      throw new PgconveyError('destructive_not_allowed', `the plan has ${destructive} destructive action(s)`, 'review them, then run again with --allow-destructive');
    }
    this.print('');
    // A copy_schema runs beside the actions after it: the progress lines never mix (render/apply-progress.ts).
    const progress = new ApplyProgress();
    await applyPlan(planned, {
      onStart: (a) => process.stdout.write(progress.start(a)),
      onDone: (a, ms) => process.stdout.write(progress.done(a, ms)),
      onFailed: (a) => process.stdout.write(progress.failed(a)),
    });
    this.print(`\nApply complete: ${plan.actions.length} action(s).`);
  }
}
