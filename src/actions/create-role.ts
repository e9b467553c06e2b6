/**
 * create_role (prepare.roles: copy): creates on the subscriber's server a
 * role the provider has, with its attributes, and its password hash when the
 * provider's role may read it (a superuser). Re-checks that the role is still
 * missing; one made meanwhile is what was wanted.
 */
import type pg from 'pg';
import type { RoleInfo } from '../catalog/model.js';
import { sqlFormat as format } from '../kernel/index.js';
import { databaseSite, defineAction, makeAction, type ActionRecord } from './action.js';

export interface CreateRoleParams {
  role: RoleInfo;
  /** The provider's database, read for the password hash. */
  providerDatabase: string;
}

export type CreateRoleAction = ActionRecord<'create_role', CreateRoleParams>;

export function proposeCreateRole(a: { database: string; queue: string; role: RoleInfo; providerDatabase: string }): CreateRoleAction {
  return makeAction('create_role', 'create', databaseSite(a.database), a.role.name, {
    queue: a.queue,
    object: a.role.name,
    reason: `role "${a.role.name}" exists on the provider and not on this server`,
    params: { role: a.role, providerDatabase: a.providerDatabase },
  });
}

export const createRole = defineAction<'create_role', CreateRoleParams>({
  kind: 'create_role',
  hint: "the subscriber's role needs CREATEROLE (or to be a superuser); or create the role there yourself",
  databases: (a) => [a.database, a.params.providerDatabase],
  execute: (a, ctx) => create(ctx.db(a.params.providerDatabase), ctx.db(a.database), a.params.role),
});

/** Creates a role as on the provider (unless it exists by now), with its password hash when the provider lets us read it. */
async function create(provider: pg.Client, subscriber: pg.Client, role: RoleInfo): Promise<void> {
  const exists = await subscriber.query('SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1', [role.name]);
  if (exists.rowCount) return;
  const a = role.attributes;
  const flag = (on: boolean, word: string) => (on ? word : `NO${word}`);
  const options = [
    flag(role.canLogin, 'LOGIN'),
    flag(role.superuser, 'SUPERUSER'),
    flag(a.inherit, 'INHERIT'),
    flag(a.createRole, 'CREATEROLE'),
    flag(a.createDb, 'CREATEDB'),
    flag(a.replication, 'REPLICATION'),
    flag(a.bypassRls, 'BYPASSRLS'),
    `CONNECTION LIMIT ${Number(a.connectionLimit)}`,
  ];
  try {
    await subscriber.query(format(`CREATE ROLE %I WITH ${options.join(' ')}`, role.name));
  } catch (err) {
    // Made meanwhile by another session (roles are the server's, not one database's): it exists, as wanted.
    if ((err as { code?: string }).code === '42710') return;
    throw err;
  }
  const superuser = (await provider.query<{ s: boolean }>('SELECT rolsuper AS s FROM pg_catalog.pg_roles WHERE rolname = current_user')).rows[0]!.s;
  if (!superuser || !role.canLogin) return;
  const hash = (await provider.query<{ h: string | null }>('SELECT rolpassword AS h FROM pg_catalog.pg_authid WHERE rolname = $1', [role.name])).rows[0]?.h;
  // A stored SCRAM or md5 hash is taken as is by ALTER ROLE … PASSWORD; the password itself is never seen.
  if (hash) await subscriber.query(format('ALTER ROLE %I PASSWORD %L', role.name, hash));
}
