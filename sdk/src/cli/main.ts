#!/usr/bin/env node
// `chit`: the command line of the Chit SDK (Node only).
import { createProgram } from './program.js';

await createProgram().parseAsync(process.argv);
