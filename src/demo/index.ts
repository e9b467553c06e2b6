/**
 * demo — the embedded demo behind `npm run demo` (run.ts): starts two local
 * servers and walks the whole loop. An entry point only.
 *
 * Must not be imported by any other module.
 */
export {};
