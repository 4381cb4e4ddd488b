/** Sends the request on to the hub, as it was made. */
export type Forward = () => Promise<Response>;

/** What happens to a request instead of a plain forward: hold it, forward it and lose the answer, ... */
export type Fault = (forward: Forward, request: { path: string; body: unknown }) => Promise<Response>;

/**
 * A `fetch` for a party's HubClient (`stack.newProvider({ fetch: wire.fetch })`) that records every
 * request and lets a test put a fault on the requests to one path: the request really goes to the hub
 * (or not) and the fault decides what the party sees. No request is answered by the test itself.
 *
 *   wire.once('/v1/exchange', async (forward) => {
 *     await (await forward()).text(); // the hub applies it and answers...
 *     throw new TypeError('fetch failed'); // ...and the answer is lost
 *   });
 */
export class FaultyFetch {
  /** Every request made, in order, with its JSON body. */
  readonly requests: { path: string; body: unknown }[] = [];
  readonly #faults = new Map<string, { fault: Fault; once: boolean }>();

  readonly fetch: typeof globalThis.fetch = async (input, init) => {
    const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const path = new URL(href).pathname;
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    this.requests.push({ path, body });
    const forward = () => globalThis.fetch(input, init);
    const entry = this.#faults.get(path);
    if (!entry) return forward();
    if (entry.once) this.#faults.delete(path);
    return entry.fault(forward, { path, body });
  };

  /** Puts `fault` on the next request to `path` only. */
  once(path: string, fault: Fault): void {
    this.#faults.set(path, { fault, once: true });
  }

  /** Puts `fault` on every request to `path` until {@link clear}. */
  always(path: string, fault: Fault): void {
    this.#faults.set(path, { fault, once: false });
  }

  clear(path: string): void {
    this.#faults.delete(path);
  }

  /** How many requests were made so far: a mark to slice {@link requests} with. */
  mark(): number {
    return this.requests.length;
  }
}

/** A one-shot signal: `open()` it once; `opened` resolves from then on. */
export class Gate {
  readonly opened: Promise<void>;
  open!: () => void;
  constructor() {
    this.opened = new Promise((resolve) => {
      this.open = resolve;
    });
  }
}
