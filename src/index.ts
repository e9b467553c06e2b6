/**
 * pgconvey's library API: what the commands use and what scripts and tests
 * may call without the CLI.
 */
export * from './config/index.js';
export * from './kernel/index.js';
