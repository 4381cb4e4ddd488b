#!/usr/bin/env node
// `chit-hub`: the hub service (dist/main.js), or, before the hub is built, what to run first.
const { existsSync } = require('node:fs');
const path = require('node:path');

const main = path.join(__dirname, '..', 'dist', 'main.js');
if (!existsSync(main)) {
  process.stderr.write(
    `chit-hub is not built yet: ${main} is missing. Run \`npm run build -w sdk && npm run build -w hub\` ` +
      '(or `npm start`, which builds it) at the repository root, then try again.\n',
  );
  process.exit(1);
}
require(main);
