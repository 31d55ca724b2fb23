-- 0004_leases_and_uncertain_charges: running jobs carry a lease, a job cancelled while its API
-- call ran keeps counting against the limits until that call is settled, and the ledger can
-- record calls the API may have billed.
--
-- jobs.lease_owner / heartbeat_at / lease_expires_at: the process running the job (an id such
-- as "host:pid:random") renews its lease while it lives; another process takes over (reports
-- the job as interrupted) only once the lease has expired. NULL expiry counts as expired.
-- jobs.charge_pending: 1 from a cancel of a running job until the runner records what its API
-- call cost (or that it cost nothing); such rows count against quota and budget like active ones.
-- usage_ledger.uncertain: 1 for a call the API may have billed (5xx, timeout, interrupted);
-- kept for the operator's estimate, never counted against a user's quota or a server's budget.

ALTER TABLE jobs ADD COLUMN lease_owner TEXT;

ALTER TABLE jobs ADD COLUMN heartbeat_at REAL;

ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;

ALTER TABLE jobs ADD COLUMN charge_pending INTEGER NOT NULL DEFAULT 0
    CHECK (charge_pending IN (0, 1));

CREATE INDEX jobs_charge_pending ON jobs (owner_id) WHERE charge_pending = 1;

ALTER TABLE usage_ledger ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0
    CHECK (uncertain IN (0, 1));
