#!/usr/bin/env node
// pgconvey command-line entry: runs the compiled oclif commands in dist/.
import { execute } from '@oclif/core';

await execute({ dir: import.meta.url });
