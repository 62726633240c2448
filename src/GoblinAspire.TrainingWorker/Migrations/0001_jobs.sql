-- Training jobs, their journal, their output and what they spent. Lease times use the database's clock so that
-- every worker judges expiry by the same clock.
CREATE TABLE IF NOT EXISTS jobs (
    id                uuid        PRIMARY KEY,
    name              text        NOT NULL,
    queue             text        NOT NULL,
    priority          integer     NOT NULL DEFAULT 0,
    executor          text        NOT NULL,
    spec              jsonb       NOT NULL,
    idempotency_key   text        UNIQUE,
    state             text        NOT NULL,
    -- The fencing token: raised by every claim; every write of a running attempt names it.
    attempt           integer     NOT NULL DEFAULT 0,
    -- Attempts that count against max_attempts: the job's own failures, not preemptions or lost leases.
    failures          integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL,
    run_after         timestamptz NOT NULL DEFAULT now(),
    lease_owner       text,
    lease_expires_at  timestamptz,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    spend_usd         numeric(14, 6) NOT NULL DEFAULT 0,
    -- The remote machine or process of the current attempt, so whoever takes the job over can clean it up.
    instance          jsonb,
    mlflow_experiment_id text,
    mlflow_run_id     text,
    model_version     text,
    checkpoint_uri    text        NOT NULL,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (queue, priority DESC, run_after, created_at)
    WHERE state IN ('queued', 'retrying', 'recovering');
CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (lease_expires_at) WHERE state IN ('provisioning', 'running');
CREATE INDEX IF NOT EXISTS jobs_listing ON jobs (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS job_events (
    id       bigserial   PRIMARY KEY,
    job_id   uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempt  integer     NOT NULL,
    kind     text        NOT NULL,
    message  text        NOT NULL
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, id);

CREATE TABLE IF NOT EXISTS job_logs (
    job_id   uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq      bigserial,
    attempt  integer     NOT NULL,
    stream   text        NOT NULL,
    line     text        NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE IF NOT EXISTS spend_entries (
    id       bigserial      PRIMARY KEY,
    job_id   uuid           NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt  integer        NOT NULL,
    at       timestamptz    NOT NULL DEFAULT now(),
    usd      numeric(14, 6) NOT NULL
);
CREATE INDEX IF NOT EXISTS spend_entries_at ON spend_entries (at);
