/**
 * `pgconvey plan FILE` — compares the desired state with every database and
 * prints what apply would do: checks first, then the actions, then a summary.
 * Changes nothing (a schema copy's dry run is rolled back). Exit 1 on errors; with --detailed-exitcode 0 for no changes and
 * 2 for changes.
 */
import { Args, Flags } from '@oclif/core';
import { planToJson, renderPlanHuman, renderPlanMarkdown } from '../render/index.js';
import { planFile, writeSavedPlan } from '../workflow/index.js';
import { PgconveyCommand } from './shared/command.js';

export default class Plan extends PgconveyCommand {
  static override summary = 'Show what apply would change to make the databases match FILE.';
  static override description =
    'Connects to every database in FILE, reads their catalogs, and prints checks (tables without a key, tables or columns missing on a subscriber, privileges, engine versions) and the ordered actions apply would take, each with its reason. Globs are resolved on the root, so a new table that matches `include` appears in the next plan. Nothing is changed: with prepare.schema: copy the schema copy is tried on each subscriber in a transaction that is rolled back (it takes the DDL\'s locks meanwhile, lock timeout 10 s), and each object it cannot create is an error.';
  static override examples = [
    '<%= config.bin %> plan plans/upgrade-two-node.yaml',
    '<%= config.bin %> plan plans/upgrade-two-node.yaml --markdown > plan.md',
    '<%= config.bin %> plan plans/upgrade-two-node.yaml --detailed-exitcode   # 0 no changes, 2 changes, 1 error',
    '<%= config.bin %> plan plans/upgrade-two-node.yaml --out upgrade.plan.json   # then: pgconvey apply upgrade.plan.json',
  ];
  static override args = { file: Args.string({ description: 'the desired-state YAML file', required: true }) };
  static override flags = {
    json: Flags.boolean({ description: 'print the plan as JSON', exclusive: ['markdown'] }),
    markdown: Flags.boolean({ description: 'print the plan as markdown, for a pull-request comment', exclusive: ['json'] }),
    'detailed-exitcode': Flags.boolean({ description: 'exit 0 when there is nothing to do, 2 when there are changes, 1 on errors' }),
    out: Flags.string({ description: 'also save the plan to this file (no secrets), for `pgconvey apply PLANFILE`; refused there if anything changed since' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Plan);
    this.json = flags.json;
    const planned = await planFile(args.file, this.workflow);
    const { plan } = planned;
    if (flags.json) this.print(JSON.stringify(planToJson(plan, args.file), null, 2));
    else if (flags.markdown) this.print(renderPlanMarkdown(plan, args.file));
    else this.print(renderPlanHuman(plan, args.file));
    if (plan.errored) this.exit(1);
    if (flags.out) {
      await writeSavedPlan(flags.out, planned);
      // On stderr, so that --json and --markdown output stays clean.
      process.stderr.write(`Saved the plan to ${flags.out}. Apply exactly this plan with: pgconvey apply ${flags.out}\n`);
    }
    if (flags['detailed-exitcode'] && plan.actions.length) this.exit(2);
  }
}
