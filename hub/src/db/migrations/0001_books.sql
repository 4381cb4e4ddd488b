-- The hub's books. Addresses, hashes and signatures are bytea; token amounts are numeric(78, 0),
-- wide enough for any uint256.

CREATE TABLE consumers (
  address        bytea PRIMARY KEY,
  -- On-chain channel, as the chain follower last saw it.
  balance        numeric(78, 0) NOT NULL DEFAULT 0,
  settled        numeric(78, 0) NOT NULL DEFAULT 0,
  exit_amount    numeric(78, 0) NOT NULL DEFAULT 0,
  exit_ready_at  timestamptz,
  -- Off-chain: the highest total the consumer signed, and the sum of the increments credited.
  signed_total   numeric(78, 0) NOT NULL DEFAULT 0,
  credited       numeric(78, 0) NOT NULL DEFAULT 0,
  -- The exchange whose consumer promise has the highest total: what a settlement submits.
  best_hashlock  bytea,
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE providers (
  address             bytea PRIMARY KEY,
  -- Total of the latest hub promise (cumulative, before the hub fee).
  promised            numeric(78, 0) NOT NULL DEFAULT 0,
  -- Settled on-chain, as the chain follower last saw it.
  settled             numeric(78, 0) NOT NULL DEFAULT 0,
  latest_hashlock     bytea,
  -- The hashlock of the last exchange whose R the provider has not revealed yet.
  unrevealed_hashlock bytea,
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Each agreement increment is credited once: credited_total is the highest agreement total credited.
CREATE TABLE agreements (
  provider        bytea NOT NULL,
  agreement_id    bytea NOT NULL,
  consumer        bytea NOT NULL,
  credited_total  numeric(78, 0) NOT NULL,
  PRIMARY KEY (provider, agreement_id)
);

-- Every exchange, keyed by its hashlock (a fresh R per invoice): the history of consumer promises and
-- hub promises, the answer to a repeated request, and R once known.
CREATE TABLE exchanges (
  hashlock            bytea PRIMARY KEY,
  provider            bytea NOT NULL,
  consumer            bytea NOT NULL,
  agreement_id        bytea NOT NULL,
  agreement_total     numeric(78, 0) NOT NULL,
  consumer_total      numeric(78, 0) NOT NULL,
  consumer_signature  bytea NOT NULL,
  increment           numeric(78, 0) NOT NULL,
  hub_total           numeric(78, 0) NOT NULL,
  encrypted_preimage  bytea NOT NULL,
  preimage            bytea,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exchanges_provider_hub_total ON exchanges (provider, hub_total DESC);
CREATE INDEX exchanges_consumer_total ON exchanges (consumer, consumer_total DESC);

-- Settlements the hub submits or tracks, with their status and transaction.
CREATE TABLE settlements (
  id          text PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('consumer', 'provider', 'identity', 'beneficiary')),
  subject     bytea NOT NULL,
  amount      numeric(78, 0) NOT NULL DEFAULT 0,
  status      text NOT NULL CHECK (status IN ('queued', 'submitted', 'confirmed', 'failed', 'retrying')),
  tx_hash     bytea,
  error       text,
  payload     jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlements_subject ON settlements (subject, created_at DESC);

-- Where the chain follower stands: the last block it applied, and that block's hash to detect reorgs.
CREATE TABLE chain_cursor (
  id          text PRIMARY KEY,
  block       bigint NOT NULL,
  block_hash  bytea NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
