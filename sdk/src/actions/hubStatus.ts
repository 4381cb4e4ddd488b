/**
 * A hub's lifecycle and solvency states, in the order of the contracts' `HubStatus` enum.
 *
 * @example
 * if (!hubStatuses.includes(input as HubStatus)) throw new Error(`unknown status ${input}`);
 */
export const hubStatuses = ['uninitialized', 'active', 'punished', 'closing', 'closed'] as const;

/**
 * A hub's lifecycle and solvency state: `active` takes deposits and settles; `punished` paid a
 * provider claim from its stake and must top it up; `closing` takes no deposits and closes after the
 * close delay; `closed` returned its stake (consumers can still exit).
 *
 * @example
 * const usable = (status: HubStatus) => status === 'active';
 */
export type HubStatus = (typeof hubStatuses)[number];

/**
 * The {@link HubStatus} of the contracts' `HubStatus` enum value.
 *
 * @throws {RangeError} for a value outside the enum.
 * @example
 * toHubStatus(2); // 'punished'
 */
export function toHubStatus(value: number | bigint): HubStatus {
  const status = hubStatuses[Number(value)];
  if (status === undefined) throw new RangeError(`${value} is not a HubStatus`);
  return status;
}
