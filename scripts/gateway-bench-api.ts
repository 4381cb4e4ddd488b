/**
 * The toy API of `npm run bench:gateway`, in a process of its own so that the bench tells its CPU from
 * the gateway's: a node:http server answering every request with CHIT_BENCH_BODY bytes (512 by default)
 * and their length. Forked by scripts/gateway-bench.ts; sends its port over IPC once it listens, and
 * stops when its parent disconnects.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const body = Buffer.alloc(Number(process.env.CHIT_BENCH_BODY ?? 512), 0x61);
const api = createServer((_request, response) => {
  response.setHeader('content-length', body.length);
  response.end(body);
});
api.listen(0, '127.0.0.1', () => process.send?.({ port: (api.address() as AddressInfo).port }));
process.once('disconnect', () => process.exit(0));
