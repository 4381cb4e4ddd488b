#!/usr/bin/env node
// `chit`: the command line of the Chit SDK (Node only).
import { enableNativeHashing } from '../node/native-hashing.js';
import { createProgram } from './program.js';

// Digests and hashlocks by the native keccak when it loads (the gateway and the tunnel hash every payment).
enableNativeHashing();
await createProgram().parseAsync(process.argv);
