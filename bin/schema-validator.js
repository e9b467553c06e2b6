#!/usr/bin/env node
// Build step: writes dist/config/desired-state.validate.cjs, the desired-state schema's validator compiled to code
// (ajv standalone, with the schema's hash), so that a command checks its file without loading ajv and compiling the
// schema at every start (about 0.2 s). Run by `npm run build` after tsc; a build output (dist/ is not in git).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validatorSource } from '../dist/config/schema-check.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
writeFileSync(join(root, 'dist/config/desired-state.validate.cjs'), validatorSource());
