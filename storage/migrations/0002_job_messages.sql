-- 0002_job_messages: which platform messages show which job, so a reaction, a DM copy or a
-- re-post finds its job after a restart without parsing file names or caching in memory.
--
-- A job may be shown by several messages (progress turned result, a /show re-post, a DM copy);
-- a message shows one job. message_id is the Discord message snowflake or the Slack ts.
-- jobs.message_ref (never written) is superseded by this table.

CREATE TABLE job_messages (
    platform    TEXT NOT NULL,
    channel_id  TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    created_at  REAL NOT NULL,
    PRIMARY KEY (platform, channel_id, message_id)
);

CREATE INDEX job_messages_job ON job_messages (job_id);
