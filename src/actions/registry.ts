/**
 * The action kinds: one module per kind, registered here in the order a plan
 * runs them (ACTION_KINDS). The plan's `Action` is the union of every kind's
 * typed record, derived from this table — so adding a kind is one new module
 * plus one line here, and every exhaustive switch over `Action['kind']`
 * fails to compile until it handles the new kind (see `unreachableKind`).
 */
import type { ActionModule, ActionRecord } from './action.js';
import { addSubscriberTable } from './add-subscriber-table.js';
import { captureSequence } from './capture-sequence.js';
import { captureTable } from './capture-table.js';
import { changeProvider } from './change-provider.js';
import { configureQueue } from './configure-queue.js';
import { copySchema } from './copy-schema.js';
import { createBranchQueue } from './create-branch-queue.js';
import { createQueue } from './create-queue.js';
import { createRole } from './create-role.js';
import { grantRole } from './grant-role.js';
import { installEngine } from './install-engine.js';
import { removeCapture } from './remove-capture.js';
import { removeConsumer } from './remove-consumer.js';
import { removeSequence } from './remove-sequence.js';
import { removeSubscriberTable } from './remove-subscriber-table.js';
import { subscribe } from './subscribe.js';
import { upgradeEngine } from './upgrade-engine.js';

/** Each entry's key must be its module's kind. */
function registry<T extends { [K in keyof T]: ActionModule<K & string, any> }>(modules: T): T {
  return modules;
}

/** Kind → module, in run order. */
export const ACTION_MODULES = registry({
  create_role: createRole,
  grant_role: grantRole,
  copy_schema: copySchema,
  install_engine: installEngine,
  upgrade_engine: upgradeEngine,
  create_queue: createQueue,
  configure_queue: configureQueue,
  capture_table: captureTable,
  capture_sequence: captureSequence,
  subscribe,
  create_branch_queue: createBranchQueue,
  change_provider: changeProvider,
  add_subscriber_table: addSubscriberTable,
  remove_subscriber_table: removeSubscriberTable,
  remove_sequence: removeSequence,
  remove_consumer: removeConsumer,
  remove_capture: removeCapture,
});

type Modules = typeof ACTION_MODULES;

export type ActionKind = keyof Modules;

/** The run order of the kinds: a plan's actions are sorted by it (then by id). */
export const ACTION_KINDS: readonly ActionKind[] = Object.keys(ACTION_MODULES) as ActionKind[];

/** The typed parameters of kind `K`. */
export type ParamsOf<K extends ActionKind> = Modules[K] extends ActionModule<K, infer P> ? P : never;

/** An action of kind `K`. */
export type ActionOf<K extends ActionKind> = ActionRecord<K, ParamsOf<K>>;

/** A plan's action: the union over every kind, told apart by `kind`. */
export type Action = { [K in ActionKind]: ActionOf<K> }[ActionKind];

/** The module of an action's kind, typed for that action. */
export function moduleOf<K extends ActionKind>(action: ActionOf<K>): ActionModule<K, ParamsOf<K>> {
  return ACTION_MODULES[action.kind] as unknown as ActionModule<K, ParamsOf<K>>;
}

/** A type guard for `Array.find`/`filter`: the actions of one kind. */
export function isKind<K extends ActionKind>(kind: K): (action: Action) => action is ActionOf<K> & Action {
  return (action: Action): action is ActionOf<K> & Action => action.kind === kind;
}

/** The default branch of an exhaustive switch over kinds: does not compile while a kind is unhandled. */
export function unreachableKind(kind: never): never {
  throw new Error(`internal: unhandled action kind ${String(kind)}`);
}
