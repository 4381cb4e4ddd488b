#!/usr/bin/env node
// `chit`: the Chit command line (dist/main.js), or, before it is built, what to run first.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    `error: chit is not built yet: ${fileURLToPath(main)} is missing\n` +
      '  → Run `npm run build -w sdk && npm run build -w cli` (or `npm start`, which builds it) at the repository root, then try again.\n',
  );
  process.exit(1);
}
await import(main.href);
