/**
 * Soak run of the randomized exactness test: starts its own two servers
 * (src/embedded), checks seeds S, S+1, … for N minutes, prints each seed and
 * the transactions checked, and stops at the first failure with its shrunk
 * reproduction (exit code 1).
 *
 * Usage: npm run soak -- --minutes 30 --seed 1 [--source 12 --target 17]
 *        [--exclude known|tag,tag] [--transactions 60] [--shrink-seconds 300] [--verbose]
 */
import { parseArgs } from 'node:util';
import { startServer, sweepStaleServers } from '../../src/embedded/index.js';
import { checkSeed, detectEnvironment, parseExcluded, type ServerRef } from '../harness/exactness/index.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string', default: String(Math.floor(Math.random() * 1e6)) },
    source: { type: 'string', default: '12' },
    target: { type: 'string', default: '17' },
    exclude: { type: 'string', default: process.env.EXACTNESS_EXCLUDE ?? '' },
    transactions: { type: 'string', default: '60' },
    'shrink-seconds': { type: 'string', default: '300' },
    verbose: { type: 'boolean', default: false },
  },
});

const out = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  const excluded = parseExcluded(args.exclude);
  const minutes = Number(args.minutes);
  const first = Number(args.seed);
  await sweepStaleServers();
  out(`[soak] starting PostgreSQL ${args.source} and ${args.target}`);
  const servers = await Promise.all([startServer({ major: Number(args.source) }), startServer({ major: Number(args.target) })]);
  try {
    const [source, target] = servers.map((s): ServerRef => ({ major: s.major, host: s.host, port: s.port, user: s.user })) as [ServerRef, ServerRef];
    const env = await detectEnvironment(source, target);
    out(`[soak] PG ${servers[0]!.version} -> ${servers[1]!.version}; seeds from ${first} for ${minutes} min; excluded: ${[...excluded].join(', ') || 'none'}`);
    const until = Date.now() + minutes * 60_000;
    let seeds = 0;
    let txns = 0;
    let rows = 0;
    for (let seed = first; Date.now() < until; seed++) {
      const o = await checkSeed(seed, source, target, env, {
        excluded,
        transactions: Number(args.transactions),
        shrinkMs: Number(args['shrink-seconds']) * 1000,
        log: args.verbose ? out : undefined,
      });
      seeds++;
      txns += o.result.committed;
      rows += o.result.rowsCompared;
      out(`[soak] seed ${seed}: ${o.result.failure ? 'FAILED' : 'ok'} — ${o.result.committed} transactions checked (${o.result.rolledBack} rolled back), ${o.result.rowsCompared} rows compared, ${o.result.durationMs} ms; total ${seeds} seeds, ${txns} transactions`);
      if (o.report) out(o.report);
      if (o.result.failure || o.result.statementErrors.length) {
        out(`[soak] stopped at seed ${seed} after ${seeds} seeds, ${txns} transactions checked, ${rows} rows compared`);
        return 1;
      }
    }
    out(`[soak] passed: ${seeds} seeds (${first}..${first + seeds - 1}), ${txns} transactions checked, ${rows} rows compared, in ${minutes} min`);
    return 0;
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`[soak] ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(2);
  },
);
