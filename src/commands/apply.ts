/**
 * `pgconvey apply FILE` — plans, shows the plan, asks (unless --auto-approve),
 * and runs the actions in order with progress. Every action is idempotent:
 * an apply that died half way is finished by running it again.
 */
import { createInterface } from 'node:readline/promises';
import { Args, Command, Flags } from '@oclif/core';
import { introspectDatabases } from '../catalog/index.js';
import { loadDesiredState } from '../config/index.js';
import { ConnectionError } from '../db/index.js';
import { ENGINE_VERSION } from '../engine/index.js';
import { ApplyLockedError, executePlan } from '../executor/index.js';
import { scrubSecrets } from '../kernel/index.js';
import { buildPlan } from '../planner/index.js';
import { renderDiagnostics, renderPlanHuman } from '../render/index.js';

export default class Apply extends Command {
  static override summary = 'Make the databases match FILE: plan, confirm, run the actions.';
  static override description =
    'Makes the same plan as `pgconvey plan`, prints it and asks for "yes" (or takes --auto-approve), then runs each action in order, printing its progress. Actions that stop replicating something are destructive and need --allow-destructive when not confirmed interactively. Running apply again after a failure finishes the work; when everything matches it prints "No changes." and exits 0.';
  static override examples = ['<%= config.bin %> apply plans/upgrade-two-node.yaml', '<%= config.bin %> apply plans/upgrade-two-node.yaml --auto-approve'];
  static override args = { file: Args.string({ description: 'the desired-state YAML file', required: true }) };
  static override flags = {
    'auto-approve': Flags.boolean({ description: 'do not ask for confirmation' }),
    'allow-destructive': Flags.boolean({ description: 'allow actions that stop replicating something, without asking' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Apply);
    const loaded = await loadDesiredState(args.file);
    const print = (text: string) => process.stdout.write(`${scrubSecrets(text, loaded.secrets)}\n`);
    if (!loaded.state) {
      print(renderDiagnostics(loaded.diagnostics));
      return this.exit(1);
    }
    const state = loaded.state;
    try {
      const plan = buildPlan({ state, catalogs: await introspectDatabases(state.databases), engineVersion: ENGINE_VERSION });
      print(renderPlanHuman(plan, args.file));
      if (plan.errored) return this.exit(1);
      if (!plan.actions.length) return;
      const destructive = plan.actions.filter((a) => a.destructive).length;
      if (!flags['auto-approve']) {
        if (!process.stdin.isTTY) {
          print('error confirmation_needed: there is no terminal to confirm on\n    hint: review the plan, then run again with --auto-approve');
          return this.exit(1);
        }
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question(`\nApply ${plan.actions.length} actions${destructive ? ` (${destructive} destructive)` : ''}? Only 'yes' will be accepted: `);
        rl.close();
        if (answer.trim() !== 'yes') {
          print('Apply cancelled.');
          return this.exit(1);
        }
      } else if (destructive && !flags['allow-destructive']) {
        print(`error destructive_not_allowed: the plan has ${destructive} destructive action(s)\n    hint: review them, then run again with --allow-destructive`);
        return this.exit(1);
      }
      print('');
      await executePlan(state, plan, {
        onStart: (a) => process.stdout.write(`  ${a.change === 'delete' ? '-' : a.change === 'update' ? '~' : '+'} ${a.id} … `),
        onDone: (_a, ms) => process.stdout.write(`done (${ms} ms)\n`),
        onFailed: (_a, err) => process.stdout.write(`failed: ${scrubSecrets(String((err as Error).message ?? err), loaded.secrets)}\n`),
      });
      print(`\nApply complete: ${plan.actions.length} action(s).`);
    } catch (err) {
      if (err instanceof ConnectionError) {
        print(`error ${err.code}: ${err.message}\n    hint: ${err.hint}`);
        return this.exit(1);
      }
      if (err instanceof ApplyLockedError) {
        print(`error apply_locked: ${err.message}\n    hint: wait for it to finish, then run apply again`);
        return this.exit(1);
      }
      throw err;
    }
  }
}
