/** grant_role (prepare.roles: copy): grants the subscriber's server a role membership the provider has (GRANT is idempotent). */
import { sqlFormat as format } from '../kernel/index.js';
import { databaseSite, defineAction, makeAction, type ActionRecord } from './action.js';

export interface GrantRoleParams {
  member: string;
  parent: string;
}

export type GrantRoleAction = ActionRecord<'grant_role', GrantRoleParams>;

export function proposeGrantRole(a: { database: string; queue: string; member: string; parent: string; dependsOn: string[] }): GrantRoleAction {
  const object = `${a.member}:${a.parent}`;
  return makeAction('grant_role', 'create', databaseSite(a.database), object, {
    queue: a.queue,
    object,
    reason: `on the provider "${a.member}" is a member of "${a.parent}"`,
    dependsOn: a.dependsOn,
    params: { member: a.member, parent: a.parent },
  });
}

export const grantRole = defineAction<'grant_role', GrantRoleParams>({
  kind: 'grant_role',
  hint: "the subscriber's role needs CREATEROLE or ADMIN OPTION on the granted role; or grant it there yourself",
  databases: (a) => [a.database],
  execute: async (a, ctx) => {
    await ctx.db(a.database).query(format('GRANT %I TO %I', a.params.parent, a.params.member));
  },
});
