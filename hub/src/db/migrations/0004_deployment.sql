-- The deployment these books belong to (hub/src/deployment): the chain, the Hub contract, and the block
-- the Registry registered the hub in, by number and hash. A chain id and deterministic addresses repeat
-- on every fresh local chain; the hash of that block does not. Written by the first hub that starts on
-- the database; every later start compares it with its own chain and refuses another deployment's
-- books. One row.
CREATE TABLE deployment (
  singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  chain_id     bigint NOT NULL,
  hub          bytea NOT NULL,
  block        bigint NOT NULL,
  block_hash   bytea NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
