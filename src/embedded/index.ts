/**
 * embedded — local throwaway PostgreSQL servers of several majors from npm
 * packages, for tests, benchmarks and the demo. Knows nothing of pgconvey's
 * domain.
 *
 * Must not import: any other src/ module.
 */
export * from './postgres-server.js';
