#!/usr/bin/env node
// `chit`: the SDK's command line (dist/cli/main.js), or, before the SDK is built, what to run first.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    `error: chit is not built yet: ${fileURLToPath(main)} is missing\n` +
      '  → Run `npm run build -w sdk` (or `npm start`, which builds it) at the repository root, then try again.\n',
  );
  process.exit(1);
}
await import(main.href);
