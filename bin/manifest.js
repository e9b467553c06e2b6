#!/usr/bin/env node
// Build step: writes oclif.manifest.json (every command's flags, args and help, read from dist/commands) so that a
// command starts by importing its own module only; without it oclif imports every command to find one (about
// 40% of a command's start-up here). Run by `npm run build` after tsc; the file is a build output (.gitignore).
import { writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const target = join(root, 'oclif.manifest.json');
rmSync(target, { force: true }); // the commands are read from dist/, never from an older manifest
const config = await Config.load({ root });
const plugin = config.plugins.get(config.pjson.name);
if (!plugin) throw new Error(`oclif did not load the plugin ${config.pjson.name}`);
writeFileSync(target, JSON.stringify(plugin.manifest, null, 1) + '\n');
