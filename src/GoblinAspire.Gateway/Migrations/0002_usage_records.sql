-- One row per answered inference request, written in batches off the request path.
CREATE TABLE usage_records (
    id            bigserial        PRIMARY KEY,
    at            timestamptz      NOT NULL,
    key_id        uuid,
    team          text             NOT NULL DEFAULT '',
    model         text             NOT NULL,
    provider      text             NOT NULL,
    input_tokens  bigint           NOT NULL DEFAULT 0,
    output_tokens bigint           NOT NULL DEFAULT 0,
    cost_usd      numeric(18, 8)   NOT NULL DEFAULT 0,
    latency_ms    double precision NOT NULL,
    ttft_ms       double precision,
    status        integer          NOT NULL,
    cache_hit     boolean          NOT NULL DEFAULT false
);
CREATE INDEX usage_by_key ON usage_records (key_id, at);
CREATE INDEX usage_by_team ON usage_records (team, at);
