/**
 * Golden files of the three plan renderings (human, JSON, markdown) for two
 * scenarios on plain catalogs: a fresh setup, and a converged setup with a
 * new table, a removal and checks. Regenerate after an intended change with
 * `UPDATE_GOLDEN=1 npx vitest run test/unit/render` and review the diff.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import chalk from 'chalk';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPlan, type Plan } from '../../../src/planner/index.js';
import { planToJson, renderPlanHuman, renderPlanMarkdown } from '../../../src/render/index.js';
import { FILE, TABLES, catalog, state, table, shopSettings } from '../planner/fixtures.js';

const DIR = 'test/fixtures/golden';

function golden(name: string, actual: string): void {
  const path = `${DIR}/${name}`;
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  expect(existsSync(path), `${path} is missing: run with UPDATE_GOLDEN=1 once and review it`).toBe(true);
  expect(actual, `${path} (UPDATE_GOLDEN=1 to accept an intended change)`).toBe(readFileSync(path, 'utf8'));
}

function scenarios(): Record<string, Plan> {
  const fresh = buildPlan({ state: state(), catalogs: { old: catalog(12, TABLES), new: catalog(17, TABLES) }, engineVersion: 3 });
  const captured = (name: string, key: string[], columns: string[]) => ({ schema: 'public', name, keyColumns: key, columns });
  const old = catalog(12, [...TABLES, table('invoices', ['id', 'amount']), table('notes', ['body'], [])], {
    engine: {
      version: 3,
      content: null,
      queues: [
        {
          name: 'shop',
          lastTick: '10',
          settings: shopSettings(),
          consumers: [{ name: 'new_leaf', lastTick: '10' }],
          tables: [captured('audit', ['event_id'], ['event_id', 'body']), captured('customers', ['id'], ['id', 'name']), captured('orders', ['id'], ['id', 'total'])],
          sequences: [{ schema: 'public', name: 'orders_id_seq' }],
        },
      ],
      subscriptions: [],
    },
  });
  const neu = catalog(17, [...TABLES, table('invoices', ['id'])], {
    engine: { version: 3, content: null, queues: [], subscriptions: [{ queue: 'shop', consumer: 'new_leaf', completedTick: '10', tables: ['audit', 'customers', 'orders'].map((name) => ({ schema: 'public', name, state: 'ok', copyPin: null, copyGeneration: null })) }] },
  });
  const changed = buildPlan({ state: state(FILE.replace('exclude: ["public.tmp_*"]', 'exclude: ["public.tmp_*", "public.customers"]')), catalogs: { old, new: neu }, engineVersion: 3 });
  return { fresh, changed };
}

describe('plan renderings (golden files)', () => {
  beforeAll(() => {
    chalk.level = 0;
  });

  for (const [name, plan] of Object.entries(scenarios())) {
    it(`${name}: human, JSON and markdown`, () => {
      golden(`plan-${name}.txt`, `${renderPlanHuman(plan, 'plans/shop.yaml')}\n`);
      golden(`plan-${name}.json`, `${JSON.stringify(planToJson(plan, 'plans/shop.yaml'), null, 2)}\n`);
      golden(`plan-${name}.md`, `${renderPlanMarkdown(plan, 'plans/shop.yaml')}\n`);
    });
  }
});

describe('a plan with errors and no actions', () => {
  it('does not say "No changes." (it cannot be applied: its errors are what must change)', () => {
    chalk.level = 0;
    const plan: Plan = { checks: [{ severity: 'error', code: 'table_without_key', message: 'table public.audit_log has no primary key', hint: 'add one' }], actions: [], summary: { add: 0, change: 0, remove: 0 }, errored: true };
    for (const text of [renderPlanHuman(plan, 'plans/shop.yaml'), renderPlanMarkdown(plan, 'plans/shop.yaml')]) {
      expect(text).not.toContain('No changes');
      expect(text).toContain('The plan has errors');
    }
  });
});
