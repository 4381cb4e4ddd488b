import type { SettlementKind } from '../settlement/settlement.types';

/** The BullMQ queues of the hub (all under QUEUE_PREFIX). */
export enum QueueName {
  /** One job per consumer claim; a worker batches the claims it holds into one `settleConsumers`. */
  ConsumerSettlement = 'consumer-settlement',
  /** One job per provider claim (requested, or by policy); batched into one `settleProviders`. */
  ProviderSettlement = 'provider-settlement',
  /** Relayed Registry actions, one transaction each. */
  Relay = 'relay',
  /** Scans for due settlements and instant-exit sweeps, on a schedule. */
  Maintenance = 'settlement-maintenance',
}

export enum JobName {
  SettleConsumer = 'settle-consumer',
  SettleProvider = 'settle-provider',
  RelayIdentity = 'relay-identity',
  RelayBeneficiary = 'relay-beneficiary',
  CollectDueConsumers = 'collect-due-consumers',
  CollectDueProviders = 'collect-due-providers',
  SweepInstantExits = 'sweep-instant-exits',
}

/** A settlement job carries only the settlement's id (its BullMQ job id too); the row is the truth. */
export interface SettlementJobData {
  id: string;
  /** Send without waiting for the batch window (an exiting consumer). */
  urgent?: boolean;
}

export type MaintenanceJobData = Record<string, never>;

/** The queue and job name of a settlement of `kind`. */
export function routeOf(kind: SettlementKind): { queue: QueueName; job: JobName } {
  switch (kind) {
    case 'consumer':
      return { queue: QueueName.ConsumerSettlement, job: JobName.SettleConsumer };
    case 'provider':
      return { queue: QueueName.ProviderSettlement, job: JobName.SettleProvider };
    case 'identity':
      return { queue: QueueName.Relay, job: JobName.RelayIdentity };
    case 'beneficiary':
      return { queue: QueueName.Relay, job: JobName.RelayBeneficiary };
  }
}
