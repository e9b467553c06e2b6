/**
 * A plan for people (`+ ~ -` glyphs in colour, grouped by database, each
 * action with its reason, the checks first, a summary line), for machines
 * (stable JSON), and for pull requests (markdown with collapsible details).
 */
import chalk from 'chalk';
import { unreachableKind, type Action, type Change, type Plan } from '../planner/index.js';
import { diagnosticToJson, renderDiagnostics } from './diagnostics.js';

const GLYPH: Record<Change, string> = { create: '+', update: '~', delete: '-' };
const COLOUR: Record<Change, (s: string) => string> = { create: chalk.green, update: chalk.yellow, delete: chalk.red };

/** The summary: `No changes.` only for a plan without errors (one with errors changes nothing because it cannot be applied). */
export function summaryLine(plan: Plan): string {
  const { add, change, remove } = plan.summary;
  if (add + change + remove === 0) return plan.errored ? 'The plan has errors: fix them, then plan again.' : 'No changes.';
  return `Plan: ${add} to add, ${change} to change, ${remove} to remove.`;
}

function byDatabase(actions: readonly Action[]): Array<[string, Action[]]> {
  const groups = new Map<string, Action[]>();
  for (const a of actions) {
    if (!groups.has(a.database)) groups.set(a.database, []);
    groups.get(a.database)!.push(a);
  }
  return [...groups];
}

/** What an action is shown about after its kind: nothing for the engine, else its object (or its queue). */
function subject(a: Action): string | null {
  switch (a.kind) {
    case 'install_engine':
    case 'upgrade_engine':
      return null;
    case 'create_queue':
    case 'configure_queue':
    case 'subscribe':
    case 'create_branch_queue':
    case 'change_provider':
    case 'copy_schema':
    case 'create_role':
    case 'grant_role':
    case 'capture_table':
    case 'capture_sequence':
    case 'add_subscriber_table':
    case 'remove_subscriber_table':
    case 'remove_sequence':
    case 'remove_consumer':
    case 'remove_capture':
      return a.object || a.queue || null;
    default:
      return unreachableKind(a);
  }
}

function label(a: Action): string {
  const s = subject(a);
  return `${a.kind}${s ? ` ${s}` : ''}`;
}

export function renderPlanHuman(plan: Plan, file: string): string {
  const out: string[] = [];
  if (plan.checks.length) out.push(renderDiagnostics(plan.checks), '');
  if (!plan.actions.length) {
    out.push(plan.errored ? summaryLine(plan) : `No changes. The databases match ${file}.`);
    return out.join('\n');
  }
  out.push('pgconvey will perform these actions:', '');
  for (const [database, actions] of byDatabase(plan.actions)) {
    out.push(chalk.bold(`  # database ${database}`));
    for (const a of actions) {
      const head = COLOUR[a.change](`  ${GLYPH[a.change]} ${label(a)}`);
      out.push(`${head}${a.destructive ? chalk.red.bold(' (destructive)') : ''}`, chalk.dim(`      ${a.reason}`));
    }
    out.push('');
  }
  out.push(chalk.bold(summaryLine(plan)));
  if (plan.errored) out.push(chalk.red('The plan has errors: fix them before applying.'));
  return out.join('\n');
}

/** The JSON form; its shape is schemas/plan-output.schema.json. */
export function planToJson(plan: Plan, file: string): Record<string, unknown> {
  return {
    format_version: 1,
    file,
    errored: plan.errored,
    summary: plan.summary,
    checks: plan.checks.map(diagnosticToJson),
    actions: plan.actions.map((a) => ({
      id: a.id,
      kind: a.kind,
      change: a.change,
      node: a.node,
      database: a.database,
      queue: a.queue,
      object: a.object,
      reason: a.reason,
      depends_on: a.dependsOn,
      destructive: a.destructive,
    })),
  };
}

export function renderPlanMarkdown(plan: Plan, file: string): string {
  const out = [`### pgconvey plan for \`${file}\``, '', `**${summaryLine(plan)}**${plan.errored ? ' The plan has errors.' : ''}`, ''];
  if (plan.checks.length) {
    out.push('| | code | problem | fix |', '| --- | --- | --- | --- |');
    for (const c of plan.checks) out.push(`| ${c.severity === 'error' ? '❌' : '⚠️'} | \`${c.code}\` | ${escapeCell(c.message)} | ${escapeCell(c.hint ?? '')} |`);
    out.push('');
  }
  if (plan.actions.length) {
    const destructive = plan.actions.filter((a) => a.destructive).length;
    out.push(`<details><summary>${plan.actions.length} actions${destructive ? ` (${destructive} destructive)` : ''}</summary>`, '');
    out.push('```diff');
    for (const [database, actions] of byDatabase(plan.actions)) {
      out.push(`# database ${database}`);
      for (const a of actions) out.push(`${GLYPH[a.change] === '~' ? '!' : GLYPH[a.change]} ${label(a)}${a.destructive ? ' (destructive)' : ''}  # ${a.reason}`);
    }
    out.push('```', '', '</details>');
  }
  return out.join('\n');
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
