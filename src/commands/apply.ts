/**
 * `pgconvey apply FILE|PLANFILE` — plans (for a saved plan: plans afresh and
 * goes on only when the fresh plan equals it; refused when tampered, made for
 * other databases or stale), shows the plan, asks (unless
 * --auto-approve or a saved plan, which was reviewed already), and runs the
 * actions in order with progress. Every action is idempotent: an apply that
 * died half way is finished by running it again.
 */
import { Args, Command, Flags } from '@oclif/core';
import { applyFailure, connectionsOf, executePlan } from '../executor/index.js';
import { renderDiagnostics, renderPlanHuman } from '../render/index.js';
import { askYes, canAsk } from './shared/confirm.js';
import { planFile, planFromSaved, printKnownError, readSavedPlan } from './shared/plan-file.js';

export default class Apply extends Command {
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

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Apply);
    let saved;
    try {
      saved = await readSavedPlan(args.file);
    } catch (err) {
      if (printKnownError((t) => process.stdout.write(`${t}\n`), err)) return this.exit(1);
      throw err;
    }
    const { print, state, plan, tools } = saved ? await planFromSaved(args.file, saved) : await planFile(args.file);
    if (!state || !plan) return this.exit(1);
    try {
      print(renderPlanHuman(plan, saved ? saved.file : args.file));
      if (plan.errored) return this.exit(1);
      if (!plan.actions.length) return;
      const destructive = plan.actions.filter((a) => a.destructive).length;
      if (!flags['auto-approve'] && !saved) {
        if (!canAsk(print)) return this.exit(1);
        if (!(await askYes(`\nApply ${plan.actions.length} actions${destructive ? ` (${destructive} destructive)` : ''}?`))) {
          print('Apply cancelled.');
          return this.exit(1);
        }
      } else if (destructive && !flags['allow-destructive']) {
        print(`error destructive_not_allowed: the plan has ${destructive} destructive action(s)\n    hint: review them, then run again with --allow-destructive`);
        return this.exit(1);
      }
      print('');
      await executePlan(plan, connectionsOf(state.databases), {
        onStart: (a) => process.stdout.write(`  ${a.change === 'delete' ? '-' : a.change === 'update' ? '~' : '+'} ${a.id} … `),
        onDone: (_a, ms) => process.stdout.write(`done (${ms} ms)\n`),
        onFailed: () => print('failed'),
      }, tools);
      print(`\nApply complete: ${plan.actions.length} action(s).`);
    } catch (err) {
      if ((err as { oclif?: { exit?: number } }).oclif?.exit !== undefined) throw err; // this.exit() above
      if (printKnownError(print, err)) return this.exit(1);
      // Every other failure the same way, on stderr: a code, what failed, a hint.
      process.stderr.write(`${renderDiagnostics([{ severity: 'error', ...applyFailure(err) }])}\n`);
      return this.exit(1);
    }
  }
}
