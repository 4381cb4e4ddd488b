/**
 * The highest agreement total the hub credited to a provider, by agreement id in lower case, as a
 * {@link ProviderLedger}'s state holds them: the totals of its checkpoint (`<key>/credited`), a map
 * that no state changes, and the totals credited since, which its document stores. Values are
 * immutable: a next state's totals ({@link CreditedTotals.with}) copy only the totals since the
 * checkpoint, so an exchange costs the same whether the provider was paid on ten agreements or a
 * million. Only a new checkpoint ({@link CreditedTotals.folded}), written once per `creditedJournal`
 * changes, goes through every agreement.
 *
 * @example
 * const totals = CreditedTotals.of({ [a]: 5n }, { [b]: 7n }).with(a, 9n);
 * totals.get(a); // 9n
 * totals.sinceCount; // 2
 */
export class CreditedTotals {
  /** The checkpoint's totals: shared by every state derived from it, never changed. */
  readonly #checkpoint: ReadonlyMap<string, bigint>;
  /** The totals credited since the checkpoint. */
  readonly #since: ReadonlyMap<string, bigint>;
  /** The checkpoint this one was folded from (see {@link CreditedTotals.rebasedOn}). */
  readonly #foldedFrom: ReadonlyMap<string, bigint> | undefined;

  private constructor(
    checkpoint: ReadonlyMap<string, bigint>,
    since: ReadonlyMap<string, bigint>,
    foldedFrom?: ReadonlyMap<string, bigint>,
  ) {
    this.#checkpoint = checkpoint;
    this.#since = since;
    this.#foldedFrom = foldedFrom;
  }

  /** No agreement credited. */
  static empty(): CreditedTotals {
    return new CreditedTotals(new Map(), new Map());
  }

  /**
   * The totals of a checkpoint and of a document stored after it: the higher of the two for each
   * agreement (a credited total only grows, and a document restored from an older backup must not
   * lower one).
   */
  static of(checkpoint: Record<string, bigint>, since: Record<string, bigint>): CreditedTotals {
    const base = new Map(Object.entries(checkpoint));
    const newer = new Map<string, bigint>();
    for (const [id, total] of Object.entries(since)) {
      const before = base.get(id);
      if (before === undefined || total > before) newer.set(id, total);
    }
    return new CreditedTotals(base, newer);
  }

  /** The total credited for agreement `id` (lower case), 0 when none. */
  get(id: string): bigint {
    return this.#since.get(id) ?? this.#checkpoint.get(id) ?? 0n;
  }

  /** These totals with agreement `id` (lower case) credited `total`. */
  with(id: string, total: bigint): CreditedTotals {
    return this.withAll([[id, total]]);
  }

  /** These totals with each agreement of `changes` (ids in lower case) credited its total. */
  withAll(changes: Iterable<readonly [string, bigint]>): CreditedTotals {
    const since = new Map(this.#since);
    for (const [id, total] of changes) since.set(id, total);
    return new CreditedTotals(this.#checkpoint, since);
  }

  /** How many totals changed since the checkpoint: what the document holds. */
  get sinceCount(): number {
    return this.#since.size;
  }

  /** The totals changed since the checkpoint, for the document. */
  since(): Record<string, bigint> {
    return Object.fromEntries(this.#since);
  }

  /** Every agreement's total, for a checkpoint's document: as long as the agreements are many. */
  all(): Record<string, bigint> {
    const all = Object.fromEntries(this.#checkpoint);
    for (const [id, total] of this.#since) all[id] = total;
    return all;
  }

  /** The same totals, all of them in the checkpoint: a new checkpoint (as long as the agreements are many). */
  folded(): CreditedTotals {
    const checkpoint = new Map(this.#checkpoint);
    for (const [id, total] of this.#since) checkpoint.set(id, total);
    return new CreditedTotals(checkpoint, new Map(), this.#checkpoint);
  }

  /**
   * The same totals over `folded`'s checkpoint: only those that differ from it stay since. `folded` is
   * what {@link CreditedTotals.folded} made of the stored state's totals; when these totals were made
   * from that state, only their totals since are compared, else all of them.
   */
  rebasedOn(folded: CreditedTotals): CreditedTotals {
    const checkpoint = folded.#checkpoint;
    const since = new Map<string, bigint>();
    const entries = this.#checkpoint === folded.#foldedFrom ? this.#since : new Map(Object.entries(this.all()));
    for (const [id, total] of entries) if (checkpoint.get(id) !== total) since.set(id, total);
    return new CreditedTotals(checkpoint, since);
  }
}
