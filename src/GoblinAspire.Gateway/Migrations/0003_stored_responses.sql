-- Responses API objects kept for GET /v1/responses/{id} and previous_response_id (`store`, the default). Each row is
-- owned by the key that made it (NULL: anonymous, where keys are not required); rows past expires_at are gone for
-- readers at once and deleted by the retention sweep. IF NOT EXISTS: running this twice is harmless.
CREATE TABLE IF NOT EXISTS stored_responses (
    id          text        PRIMARY KEY,
    key_id      uuid,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    response    jsonb       NOT NULL,
    input_items jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS stored_responses_by_expiry ON stored_responses (expires_at);
