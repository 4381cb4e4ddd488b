import { HubClient, type HubClientOptions, normalizeHubUrl } from './hub-client.js';

/**
 * One {@link HubClient} per hub URL, sharing the same options (fetch, timeout, retries). Chit has many
 * hubs side by side; a consumer or provider talks to each through its own client, picked by the URL
 * the Registry lists for it.
 *
 * @example
 * const hubs = new HubDirectory({ timeoutMs: 5_000 });
 * const hub = hubs.get('https://hub-a.example');
 * hubs.get('https://hub-a.example/') === hub; // true: one client per hub
 */
export class HubDirectory {
  readonly #defaults: Omit<HubClientOptions, 'url'>;
  readonly #clients = new Map<string, HubClient>();

  constructor(defaults: Omit<HubClientOptions, 'url'> = {}) {
    this.#defaults = defaults;
  }

  /**
   * The client of the hub at `url`, created on first use.
   *
   * @example
   * const info = await hubs.get(url).info();
   */
  get(url: string): HubClient {
    const key = normalizeHubUrl(url);
    let client = this.#clients.get(key);
    if (!client) {
      client = new HubClient({ ...this.#defaults, url: key });
      this.#clients.set(key, client);
    }
    return client;
  }

  /**
   * Whether a client for `url` exists already.
   *
   * @example
   * hubs.has('https://hub-a.example'); // false until get() was called
   */
  has(url: string): boolean {
    return this.#clients.has(normalizeHubUrl(url));
  }

  /**
   * The normalized URLs of every hub with a client.
   *
   * @example
   * for (const url of hubs.urls()) console.log(url);
   */
  urls(): string[] {
    return [...this.#clients.keys()];
  }

  /**
   * The first of `urls` whose hub answers `GET /ready`, in order; `undefined` when none does.
   *
   * @example
   * const hub = await hubs.firstReady(['https://hub-a.example', 'https://hub-b.example']);
   */
  async firstReady(urls: readonly string[]): Promise<HubClient | undefined> {
    for (const url of urls) {
      const client = this.get(url);
      if (await client.ready()) return client;
    }
    return undefined;
  }
}
