// Builds the dashboard into dist/: index.html, app.js (the app, the SDK's HubClient, viem and uPlot in
// one minified bundle) and app.css. The hub serves dist/ at /dashboard.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeMetafile, build } from 'esbuild';

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
const result = await build({
  entryPoints: [
    { in: path.join(root, 'src/main.ts'), out: 'app' },
    { in: path.join(root, 'src/app.css'), out: 'app' },
  ],
  outdir: dist,
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});
copyFileSync(path.join(root, 'src/index.html'), path.join(dist, 'index.html'));
if (process.env.DASHBOARD_ANALYZE) console.log(await analyzeMetafile(result.metafile));
