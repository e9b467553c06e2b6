#!/usr/bin/env node
// Build step: writes dist/config/desired-state.validate.cjs, the desired-state schema's validator as code (ajv
// standalone, src/config/schema-standalone.ts), so that no command compiles the schema when it starts (about 0.4 s
// of each start-up). Run by `npm run build` after tsc; a build output. schema-check uses it only when it was made
// from the schema it reads (a hash), and compiles the schema otherwise.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { STANDALONE_FILE, standaloneValidatorSource } = await import(join(root, 'dist/config/schema-standalone.js'));
const schema = readFileSync(join(root, 'schemas/desired-state.schema.json'), 'utf8');
writeFileSync(join(root, 'dist/config', STANDALONE_FILE), standaloneValidatorSource(schema));
