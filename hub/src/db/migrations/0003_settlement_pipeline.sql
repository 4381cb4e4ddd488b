-- The settlement pipeline and the relayer (hub/src/settlement): leases on queued settlements, every
-- transaction the hub's keys signed, and the instant exits the operator co-signed.

-- A settlement is keyed by what it settles: `c-<consumer>-<total>`, `p-<provider>-<total>`,
-- `identity-<identity>-<nonce>`, `beneficiary-<identity>-<nonce>` (also its BullMQ job id). `amount` is
-- the cumulative total claimed (or the Registry nonce for relayed identity actions). `attempts` counts
-- the jobs that worked on it; `lease_until` is set while one replica has it in a batch, so that no
-- other replica puts it in another transaction (the lease runs out if that replica dies).
ALTER TABLE settlements
  ADD COLUMN attempts     integer NOT NULL DEFAULT 0,
  ADD COLUMN lease_until  timestamptz;
CREATE INDEX settlements_open ON settlements (kind, created_at) WHERE status IN ('queued', 'submitted', 'retrying');
CREATE INDEX settlements_tx_hash ON settlements (tx_hash) WHERE tx_hash IS NOT NULL;

-- Every transaction signed by one of the hub's keys, written (and committed) before it is broadcast, so
-- that a hub restarted at any point tracks or rebroadcasts it rather than signing another for the same
-- work. A fee bump is a new row with the same (sender, nonce); at most one of them is ever mined.
CREATE TABLE transactions (
  hash                      bytea PRIMARY KEY,
  sender                    bytea NOT NULL,
  nonce                     bigint NOT NULL,
  kind                      text NOT NULL CHECK (kind IN ('consumer', 'provider', 'identity', 'beneficiary')),
  -- Claims the transaction carries, for the gas per promise of fee quotes.
  claims                    integer NOT NULL,
  raw                       bytea NOT NULL,
  max_fee_per_gas           numeric(78, 0) NOT NULL,
  max_priority_fee_per_gas  numeric(78, 0) NOT NULL,
  -- pending: broadcast (or about to be), not mined; mined: in a block (block, gas_used);
  -- replaced: another transaction with its nonce was mined; dropped: the node refused it.
  status                    text NOT NULL CHECK (status IN ('pending', 'mined', 'replaced', 'dropped')),
  block                     bigint,
  gas_used                  numeric(78, 0),
  created_at                timestamptz NOT NULL DEFAULT now(),
  updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_sender_nonce ON transactions (sender, nonce);
CREATE INDEX transactions_pending ON transactions (sender, nonce) WHERE status = 'pending';
CREATE INDEX transactions_mined_kind ON transactions (kind, created_at DESC) WHERE status = 'mined';

-- Instant exits the operator co-signed, one row per (consumer, exit nonce of the Hub contract). While a
-- signature may still be used, its amount is reserved: consumers.exit_reserved holds the sum of the
-- reserved rows, and the exchange rules count it like a pending exit (what a consumer may still promise
-- is balance - exit_amount - exit_reserved). `amount`, `deadline` and `signature` are those of the latest
-- signature for the nonce; `reserved` is the largest amount signed for it (only one can be used).
-- reserved -> used (the nonce was spent on-chain; released once the chain follower applied the exit)
-- reserved -> released (the deadline passed unused, or the follower applied the exit).
CREATE TABLE instant_exits (
  consumer    bytea NOT NULL,
  nonce       numeric(78, 0) NOT NULL,
  amount      numeric(78, 0) NOT NULL,
  reserved    numeric(78, 0) NOT NULL,
  deadline    bigint NOT NULL,
  signature   bytea NOT NULL,
  status      text NOT NULL CHECK (status IN ('reserved', 'used', 'released')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, nonce)
);
CREATE INDEX instant_exits_open ON instant_exits (deadline) WHERE status IN ('reserved', 'used');

-- Instant-exit reservations (see instant_exits), kept apart from exit_amount, which the chain follower
-- overwrites with the on-chain exit request.
ALTER TABLE consumers ADD COLUMN exit_reserved numeric(78, 0) NOT NULL DEFAULT 0;
