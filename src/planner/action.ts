/**
 * Plan data: the action record and kinds, defined per kind in src/actions/
 * (typed params, constructor, hint, execution) and re-exported here, where
 * plan consumers (render, commands) have always found them. The order of
 * ACTION_KINDS is the order in which a plan runs them.
 */
export { ACTION_KINDS, isKind, unreachableKind, type Action, type ActionKind, type ActionOf, type Change, type ParamsOf } from '../actions/index.js';
