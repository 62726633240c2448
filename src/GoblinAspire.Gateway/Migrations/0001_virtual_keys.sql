-- Virtual API keys. Only a SHA-256 of each key is stored: keys are 256-bit random secrets, so a fast hash is enough
-- to make a leaked table useless, and it keeps the lookup on the request path cheap.
CREATE TABLE virtual_keys (
    id             uuid        PRIMARY KEY,
    key_hash       bytea       NOT NULL UNIQUE,
    key_prefix     text        NOT NULL,
    name           text        NOT NULL DEFAULT '',
    owner          text        NOT NULL DEFAULT '',
    team           text        NOT NULL DEFAULT '',
    allowed_models text[]      NOT NULL DEFAULT '{}',
    rpm            integer,
    tpm            integer,
    max_parallel   integer,
    budget_usd     numeric(14, 4),
    budget_period  text        CHECK (budget_period IN ('day', 'week', 'month')),
    expires_at     timestamptz,
    disabled       boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX virtual_keys_by_team ON virtual_keys (team);
