#!/usr/bin/env node
// `chit`: the Chit command line (@chit/cli, Node only), on the SDK (@chit/sdk).
import { enableNativeHashing } from '@chit/sdk/node';
import { createProgram } from './program.js';

// Digests and hashlocks by the native keccak when it loads (the gateway and the tunnel hash every payment).
enableNativeHashing();
await createProgram().parseAsync(process.argv);
