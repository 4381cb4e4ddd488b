/** viem's errors for an RPC that does not answer: refused, reset, timed out, or an HTTP error status. */
const TRANSPORT_ERRORS = new Set(['HttpRequestError', 'TimeoutError', 'WebSocketRequestError', 'SocketClosedError']);

/**
 * Whether `error`, or an error it was caused by, says the chain RPC did not answer (rather than that
 * a call reverted or a value is wrong). Matched by name: the SDK's viem may be another copy.
 */
export function rpcUnreachable(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 10; cause = cause.cause, depth++) {
    if (TRANSPORT_ERRORS.has(cause.name)) return true;
  }
  return false;
}

/**
 * One short line for the log about an RPC error: viem's messages carry the URL (which may hold an API
 * key), the request body and the docs links, tens of KB for a multicall. `rpcUrl` is masked if it shows.
 */
export function briefRpcError(error: unknown, rpcUrl: string): string {
  let found: (Error & { shortMessage?: string; details?: string }) | undefined;
  for (let cause = error, depth = 0; cause instanceof Error && depth < 10; cause = cause.cause, depth++) {
    if (TRANSPORT_ERRORS.has(cause.name)) found = cause;
  }
  const top = (found ?? error) as Error & { shortMessage?: string; details?: string };
  // The system's code of the socket error under fetch's "fetch failed": ECONNREFUSED, ENOTFOUND...
  let code: string | undefined;
  for (let cause: unknown = top.cause, depth = 0; cause instanceof Error && depth < 10; cause = cause.cause, depth++) {
    const own = (cause as { code?: unknown }).code;
    if (typeof own === 'string') code = own;
  }
  const text = [top.shortMessage ?? top.message?.split('\n')[0], top.details, code && `(${code})`]
    .filter(Boolean)
    .join(' ');
  const masked = text.split(rpcUrl).join('RPC_URL').replace(/\s+/g, ' ');
  return masked.length > 200 ? `${masked.slice(0, 199)}…` : masked;
}
