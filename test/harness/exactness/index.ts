/**
 * The randomized exactness check of one seed, for the integration test and
 * the soak command: generate the scenario, run it, and on failure shrink it
 * and render a report with the seed and the minimal reproduction.
 */
import { generateScenario, reproduction, countItems, liveTxns, type Scenario } from './scenario.js';
import { runScenario, type RunResult, type ServerRef } from './runner.js';
import { shrink } from './shrink.js';
import type { Environment } from './types.js';

export { detectEnvironment, runScenario, type ServerRef, type RunResult } from './runner.js';
export { parseExcluded, KNOWN_BROKEN, FEATURES } from './features.js';
export { generateScenario, reproduction } from './scenario.js';
export { compareTable, describeComparison } from './comparer.js';

export interface SeedOptions {
  excluded: Set<string>;
  transactions?: number;
  /** Time the shrinker may take on a failure (0: do not shrink). */
  shrinkMs?: number;
  log?: (line: string) => void;
}

export interface SeedOutcome {
  seed: number;
  scenario: Scenario;
  result: RunResult;
  /** Empty when the seed passed. */
  report: string;
}

export async function checkSeed(seed: number, source: ServerRef, target: ServerRef, env: Environment, opts: SeedOptions): Promise<SeedOutcome> {
  const log = opts.log ?? (() => undefined);
  const scenario = generateScenario(seed, env, { excluded: opts.excluded, transactions: opts.transactions });
  log(`[exactness] seed ${seed}: ${scenario.tables.length} tables, ${scenario.txns.length} transactions, ${scenario.writers} writers (replay with EXACTNESS_SEED=${seed})`);
  const result = await runScenario(scenario, source, target, { log });
  const lines: string[] = [];
  if (result.statementErrors.length) {
    lines.push(`seed ${seed}: ${result.statementErrors.length} workload statement(s) failed on the provider (a generator bug):`, ...result.statementErrors.slice(0, 5));
  }
  if (result.failure) {
    lines.push(`seed ${seed} FAILED (${result.failure.kind}) — replay with EXACTNESS_SEED=${seed}${opts.excluded.size ? ` EXACTNESS_EXCLUDE=${[...opts.excluded].join(',')}` : ''}`, result.failure.message);
    let repro = scenario;
    let reproResult = result;
    if ((opts.shrinkMs ?? 0) > 0) {
      const s = await shrink(scenario, result.failure, result, source, target, opts.shrinkMs!, log);
      repro = s.scenario;
      reproResult = s.result;
      lines.push('', `minimal reproduction (seed ${seed}; shrunk in ${Math.round(s.ms / 1000)} s over ${s.runs} runs to ${repro.tables.length} table(s), ${liveTxns(repro).length} transaction(s), ${countItems(repro)} statement item(s)):`);
    } else lines.push('', `reproduction (seed ${seed}, not shrunk):`);
    lines.push(reproduction(repro), '', `-- its result: ${reproResult.failure?.message ?? 'passes?'}`);
  }
  return { seed, scenario, result, report: lines.join('\n') };
}
