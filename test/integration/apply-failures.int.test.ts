/**
 * Every failure path of apply reaches the user as a diagnostic: for each
 * action kind an action is made to fail on a real database (no engine there,
 * a role that may not create, a role that does not exist, a schema copy whose
 * script fails), and what the apply command prints for it (applyFailure
 * through the diagnostic renderer) has `error CODE:` and a hint. One failure
 * is also driven through the CLI: apply's stderr has the code and the hint.
 */
import { randomBytes } from 'node:crypto';
import chalk from 'chalk';
import { describe, expect, it } from 'vitest';
import { loadDesiredStateFromText, type DesiredState } from '../../src/config/index.js';
import { applyFailure, connectionsOf, executePlan, type ExecutorTools, type PreparedSchemaCopy } from '../../src/executor/index.js';
import { ACTION_KINDS, queueSettings, type Action, type ActionKind, type Plan } from '../../src/planner/index.js';
import { renderDiagnostics } from '../../src/render/index.js';
import { runCli } from '../harness/cli.js';
import { freshDatabase } from '../harness/databases.js';
import { twoNodeYaml, writeTwoNodeFile } from '../harness/desired-file.js';
import { sourceServer, targetServer } from '../harness/servers.js';

const sfx = randomBytes(3).toString('hex');
const WEAK = `weak_${sfx}`;

function action(kind: ActionKind, database: 'old' | 'new', params: Record<string, unknown>): Action {
  const change = kind.startsWith('remove_') ? 'delete' : kind === 'upgrade_engine' || kind === 'configure_queue' ? 'update' : 'create';
  return { id: `${kind}:test`, kind, change, node: database === 'old' ? 'old_root' : 'new_leaf', database, queue: 'shop', object: null, reason: 'test', dependsOn: [], destructive: false, params } as unknown as Action;
}

function plan(a: Action): Plan {
  return { checks: [], actions: [a], summary: { add: 1, change: 0, remove: 0 }, errored: false };
}

describe('apply failures', () => {
  it('every action kind that fails is reported with a code and a hint', { timeout: 120_000 }, async () => {
    chalk.level = 0;
    // Databases without the engine: every engine call fails there. A login role that may create nothing, for the engine's install.
    const [p, s] = [await freshDatabase(sourceServer(), 'af_p'), await freshDatabase(targetServer(), 'af_s')];
    await s.query(`CREATE ROLE ${WEAK} LOGIN`);
    const load = (yaml: string): DesiredState => loadDesiredStateFromText('f.yaml', yaml, {}).state!;
    const state = load(twoNodeYaml({ oldDsn: p.dsn, newDsn: s.dsn }));
    const weak = load(twoNodeYaml({ oldDsn: p.dsn, newDsn: `${s.dsn.replace(/user=\S+/, `user=${WEAK}`)}` }));
    const role = { name: `r_${sfx}`, canLogin: false, superuser: false, attributes: { inherit: true, createRole: false, createDb: false, replication: false, bypassRls: false, connectionLimit: Number.NaN }, memberOf: [] };
    const t = { schema: 'public', table: 'missing' };
    const failing: Record<ActionKind, [Action, DesiredState, ExecutorTools?]> = {
      create_role: [action('create_role', 'new', { role, providerDatabase: 'old' }), state],
      grant_role: [action('grant_role', 'new', { parent: `nobody_${sfx}`, member: `noone_${sfx}` }), state],
      copy_schema: [action('copy_schema', 'new', { tables: [t], consumer: 'new_leaf', mode: 'tables', providerDatabase: 'old' }), state, { pgDump: { path: '/usr/bin/pg_dump', major: 99, version: 'test' }, schemaCopies: new Map([['copy_schema:test', scriptThatFails()]]) }],
      install_engine: [action('install_engine', 'new', {}), weak],
      upgrade_engine: [action('upgrade_engine', 'new', {}), weak],
      create_queue: [action('create_queue', 'old', { settings: queueSettings(state.queues[0]!) }), state],
      configure_queue: [action('configure_queue', 'old', { settings: queueSettings(state.queues[0]!) }), state],
      capture_table: [action('capture_table', 'old', { schema: 'public', table: 'missing', keyColumns: ['id'] }), state],
      capture_sequence: [action('capture_sequence', 'old', { schema: 'public', sequence: 'missing' }), state],
      subscribe: [action('subscribe', 'new', { provider: 'old_root', consumer: 'new_leaf', providerDatabase: 'old' }), state],
      create_branch_queue: [action('create_branch_queue', 'new', { consumer: 'new_leaf', provider: 'old_root', settings: queueSettings(state.queues[0]!) }), state],
      change_provider: [action('change_provider', 'new', { consumer: 'new_leaf', from: null, fromDatabase: null, to: 'old_root', toDatabase: 'old', tick: '1' }), state],
      add_subscriber_table: [action('add_subscriber_table', 'new', { ...t, consumer: 'new_leaf' }), state],
      remove_subscriber_table: [action('remove_subscriber_table', 'new', { ...t, consumer: 'new_leaf' }), state],
      remove_sequence: [action('remove_sequence', 'old', { schema: 'public', sequence: 'missing' }), state],
      remove_consumer: [action('remove_consumer', 'old', { consumer: 'new_leaf' }), state],
      remove_capture: [action('remove_capture', 'old', { ...t }), state],
    };
    expect(Object.keys(failing).sort()).toEqual([...ACTION_KINDS].sort());
    for (const kind of ACTION_KINDS) {
      const [a, st, tools] = failing[kind];
      const err = await executePlan(plan(a), connectionsOf(st.databases), {}, tools ?? { pgDump: null }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, kind).not.toBeNull();
      const text = renderDiagnostics([{ severity: 'error', ...applyFailure(err) }]);
      expect(text, kind).toMatch(kind === 'copy_schema' ? /^error schema_copy_failed: action copy_schema:test: creating TABLE public\.missing on node "new_leaf" failed/ : new RegExp(`^error apply_(action_failed|permission_denied): action ${kind}:test failed: .+`));
      expect(text, kind).toMatch(/\n {4}hint: \S.+/);
      expect(text, kind).not.toMatch(/^Error/m);
    }
    // The failed schema copy left nothing behind (one transaction).
    expect((await s.query("SELECT to_regclass('public.before_missing') IS NULL AS gone")).rows[0].gone).toBe(true);
  });

  it('apply prints an action that fails as `error CODE:` with a hint on stderr (a role that may not create roles)', { timeout: 120_000 }, async () => {
    if (targetServer().major < 15) return; // GRANT SET ON PARAMETER (for a non-superuser that may apply) is 15+
    const [p, s] = [await freshDatabase(sourceServer(), 'af_cp'), await freshDatabase(targetServer(), 'af_cs')];
    const mover = `mover_${sfx}`;
    await s.query(`CREATE ROLE ${mover} LOGIN; ALTER DATABASE ${s.name} OWNER TO ${mover}; GRANT pg_signal_backend TO ${mover}; GRANT SET ON PARAMETER session_replication_role TO ${mover}`);
    await p.query(`CREATE ROLE app_${sfx} NOLOGIN; CREATE TABLE public.t (id int PRIMARY KEY); ALTER TABLE public.t OWNER TO app_${sfx}`);
    await s.query(`CREATE TABLE public.t (id int PRIMARY KEY); ALTER TABLE public.t OWNER TO ${mover}`);
    const file = writeTwoNodeFile({ oldDsn: p.dsn, newDsn: s.dsn.replace(/user=\S+/, `user=${mover}`), extra: 'prepare: { roles: copy }' });
    const r = await runCli(['apply', file, '--auto-approve'], { timeoutMs: 60_000 });
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error apply_permission_denied: action create_role:db:new:\\S+ failed: permission denied to create role.* \\(SQLSTATE 42501\\)`, 'm'));
    expect(r.stderr).toMatch(/\n {4}hint: the subscriber's role needs CREATEROLE .*then run apply again/);
    expect(r.stderr).not.toMatch(/^\s*Error:/m);
  });
});

/** A script of two entries whose second fails: the first must be rolled back with it. */
function scriptThatFails(): PreparedSchemaCopy {
  const entry = (dumpId: number, tag: string) => ({ dumpId, catalog: 1259, oid: 16384 + dumpId, type: 'TABLE', schema: 'public', tag, owner: 'postgres', line: '' });
  return {
    preamble: '',
    entries: [
      { entry: entry(1, 'before_missing'), sql: 'CREATE TABLE public.before_missing (id int);' },
      { entry: entry(2, 'missing'), sql: 'CREATE TABLE public.missing (id public.no_such_type);' },
    ],
    objects: [],
    problems: [],
  };
}
