-- 0001_initial: jobs, their images, the usage ledger and per-server settings.
--
-- Conventions: times are REAL unix seconds (UTC); days are 'YYYY-MM-DD' and months 'YYYY-MM',
-- both UTC; money is REAL US dollars (estimates from the configurable price table).
-- Applied inside one transaction by storage.db.Database.migrate: no PRAGMA, no BEGIN/COMMIT here.

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    -- monotonic insertion order (1, 2, 3 ...); assigned by storage.jobs.insert_job
    seq                 INTEGER NOT NULL UNIQUE,
    platform            TEXT NOT NULL,
    server_id           TEXT NOT NULL DEFAULT '',
    channel_id          TEXT NOT NULL DEFAULT '',
    owner_id            TEXT NOT NULL,
    command             TEXT NOT NULL,
    action              TEXT,
    parent_job_id       TEXT REFERENCES jobs (id),
    parent_index        INTEGER,
    prompt              TEXT NOT NULL DEFAULT '',
    request_json        TEXT NOT NULL,
    input_sha256        TEXT,
    input_content_type  TEXT,
    num_images          INTEGER NOT NULL CHECK (num_images >= 0),
    rendering_speed     TEXT,
    estimated_cost_usd  REAL NOT NULL DEFAULT 0,
    status              TEXT NOT NULL
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    error               TEXT,
    error_ref           TEXT,
    cost_usd            REAL NOT NULL DEFAULT 0,
    request_key         TEXT UNIQUE,
    message_ref         TEXT,
    descriptions_json   TEXT,
    created_at          REAL NOT NULL,
    started_at          REAL,
    finished_at         REAL
);

CREATE INDEX jobs_owner_created ON jobs (owner_id, created_at);
CREATE INDEX jobs_status_created ON jobs (status, created_at);
CREATE INDEX jobs_parent ON jobs (parent_job_id);

CREATE TABLE job_images (
    job_id        TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL CHECK (idx >= 0),
    sha256        TEXT,               -- NULL: withheld by the API's safety check
    content_type  TEXT,
    width         INTEGER,
    height        INTEGER,
    size_bytes    INTEGER,
    seed          INTEGER,
    prompt        TEXT,               -- the prompt as the API ran it (magic prompt may rewrite)
    is_image_safe INTEGER NOT NULL CHECK (is_image_safe IN (0, 1)),
    PRIMARY KEY (job_id, idx)
);

-- One row per charged job: charging is idempotent (INSERT OR IGNORE on the primary key).
CREATE TABLE usage_ledger (
    job_id      TEXT PRIMARY KEY REFERENCES jobs (id),
    platform    TEXT NOT NULL,
    server_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    day         TEXT NOT NULL,
    month       TEXT NOT NULL,
    command     TEXT,
    images      INTEGER NOT NULL CHECK (images >= 0),
    cost_usd    REAL NOT NULL CHECK (cost_usd >= 0),
    created_at  REAL NOT NULL
);

CREATE INDEX usage_ledger_user_day ON usage_ledger (platform, server_id, user_id, day);
CREATE INDEX usage_ledger_server_month ON usage_ledger (platform, server_id, month);

CREATE TABLE server_settings (
    platform    TEXT NOT NULL,
    server_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_by  TEXT,
    updated_at  REAL,
    PRIMARY KEY (platform, server_id, key)
);
