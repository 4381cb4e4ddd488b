-- The chain follower's journal and the Registry's identities.

-- One row per block range the follower applied, keyed by the range's last block: that block's hash
-- (to find, after a reorg, the newest applied block that is still canonical) and the accounts the
-- range touched (to re-read their state at that block when the ranges after it are undone).
-- chain_cursor holds the newest row; rows older than the follower's history window are pruned.
CREATE TABLE chain_checkpoints (
  cursor_id          text NOT NULL REFERENCES chain_cursor (id) ON DELETE CASCADE,
  block              bigint NOT NULL,
  block_hash         bytea NOT NULL,
  consumers          bytea[] NOT NULL DEFAULT '{}',
  providers          bytea[] NOT NULL DEFAULT '{}',
  identities         bytea[] NOT NULL DEFAULT '{}',
  -- Consumer rows the range created: undoing the range removes them again while they hold nothing.
  created_consumers  bytea[] NOT NULL DEFAULT '{}',
  applied_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (cursor_id, block)
);

-- Registered identities of the Registry and where their earnings are paid, as the follower last saw them.
CREATE TABLE identities (
  address      bytea PRIMARY KEY,
  beneficiary  bytea NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
