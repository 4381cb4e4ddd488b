-- History (hub/src/history): earnings and spending over time, kept as exchanges commit. The statement
-- that writes a batch of exchanges adds their increments to these rows too, so a figure never disagrees
-- with the books, and a year of a provider's earnings is at most 8,784 rows to read, however many
-- exchanges made them. Hours and days are UTC.

-- A provider's earnings (the increments of its exchanges, before the hub fee) per hour.
CREATE TABLE provider_hourly (
  provider   bytea NOT NULL,
  hour       timestamptz NOT NULL,
  amount     numeric(78, 0) NOT NULL,
  exchanges  bigint NOT NULL,
  PRIMARY KEY (provider, hour)
);

-- A consumer's spending per hour.
CREATE TABLE consumer_hourly (
  consumer   bytea NOT NULL,
  hour       timestamptz NOT NULL,
  amount     numeric(78, 0) NOT NULL,
  exchanges  bigint NOT NULL,
  PRIMARY KEY (consumer, hour)
);

-- What each consumer paid each provider per day: a provider's earnings by consumer, a consumer's
-- spending by provider.
CREATE TABLE pair_daily (
  provider   bytea NOT NULL,
  consumer   bytea NOT NULL,
  day        timestamptz NOT NULL,
  amount     numeric(78, 0) NOT NULL,
  exchanges  bigint NOT NULL,
  PRIMARY KEY (provider, consumer, day)
);
CREATE INDEX pair_daily_consumer ON pair_daily (consumer, day);

-- The hub's volume per hour, in 16 stripes: each batch adds to one stripe picked at random, so
-- concurrent batches seldom wait for each other's row; a reader sums the stripes of an hour.
CREATE TABLE hub_hourly (
  hour       timestamptz NOT NULL,
  stripe     smallint NOT NULL CHECK (stripe BETWEEN 0 AND 15),
  amount     numeric(78, 0) NOT NULL,
  exchanges  bigint NOT NULL,
  PRIMARY KEY (hour, stripe)
);

-- The hub's money on-chain and its liabilities, sampled once a minute by whichever replica gets there
-- first: stake and free funds from the Hub contract, liabilities (promised - settled) from the books.
CREATE TABLE hub_snapshots (
  at           timestamptz PRIMARY KEY,
  stake        numeric(78, 0) NOT NULL,
  free_funds   numeric(78, 0) NOT NULL,
  liabilities  numeric(78, 0) NOT NULL
);

-- Sign-In with Ethereum (EIP-4361) nonces the hub handed out, each good for one sign-in before it expires.
CREATE TABLE auth_nonces (
  nonce       text PRIMARY KEY,
  expires_at  timestamptz NOT NULL
);

-- The exchanges made before this migration.
INSERT INTO provider_hourly (provider, hour, amount, exchanges)
SELECT provider, date_trunc('hour', created_at, 'UTC'), sum(increment), count(*) FROM exchanges GROUP BY 1, 2;
INSERT INTO consumer_hourly (consumer, hour, amount, exchanges)
SELECT consumer, date_trunc('hour', created_at, 'UTC'), sum(increment), count(*) FROM exchanges GROUP BY 1, 2;
INSERT INTO pair_daily (provider, consumer, day, amount, exchanges)
SELECT provider, consumer, date_trunc('day', created_at, 'UTC'), sum(increment), count(*) FROM exchanges GROUP BY 1, 2, 3;
INSERT INTO hub_hourly (hour, stripe, amount, exchanges)
SELECT date_trunc('hour', created_at, 'UTC'), 0, sum(increment), count(*) FROM exchanges GROUP BY 1;
