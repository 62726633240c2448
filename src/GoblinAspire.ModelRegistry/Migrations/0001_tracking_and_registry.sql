-- MLflow tracking and model registry. Times are epoch milliseconds, as MLflow's API carries them.
CREATE TABLE experiments (
    experiment_id     bigint      PRIMARY KEY,
    name              text        NOT NULL UNIQUE,
    artifact_location text        NOT NULL,
    lifecycle_stage   text        NOT NULL DEFAULT 'active' CHECK (lifecycle_stage IN ('active', 'deleted')),
    creation_time     bigint      NOT NULL,
    last_update_time  bigint      NOT NULL
);
CREATE SEQUENCE experiment_ids START WITH 1 OWNED BY experiments.experiment_id;

CREATE TABLE experiment_tags (
    experiment_id bigint NOT NULL REFERENCES experiments ON DELETE CASCADE,
    key           text   NOT NULL,
    value         text   NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE runs (
    run_id          text   PRIMARY KEY,
    experiment_id   bigint NOT NULL REFERENCES experiments,
    run_name        text   NOT NULL,
    user_id         text   NOT NULL DEFAULT '',
    status          text   NOT NULL CHECK (status IN ('RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED')),
    start_time      bigint NOT NULL,
    end_time        bigint,
    lifecycle_stage text   NOT NULL DEFAULT 'active' CHECK (lifecycle_stage IN ('active', 'deleted')),
    artifact_uri    text   NOT NULL
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time DESC);

CREATE TABLE metrics (
    run_id    text             NOT NULL REFERENCES runs ON DELETE CASCADE,
    key       text             NOT NULL,
    value     double precision NOT NULL,
    timestamp bigint           NOT NULL,
    step      bigint           NOT NULL,
    seq       bigserial        PRIMARY KEY
);
CREATE INDEX metrics_history ON metrics (run_id, key, step, timestamp);

-- The value per key that filters and run views show: the one at the highest step, then the newest.
CREATE TABLE latest_metrics (
    run_id    text             NOT NULL REFERENCES runs ON DELETE CASCADE,
    key       text             NOT NULL,
    value     double precision NOT NULL,
    timestamp bigint           NOT NULL,
    step      bigint           NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE params (
    run_id text NOT NULL REFERENCES runs ON DELETE CASCADE,
    key    text NOT NULL,
    value  text NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE run_tags (
    run_id text NOT NULL REFERENCES runs ON DELETE CASCADE,
    key    text NOT NULL,
    value  text NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE registered_models (
    name                   text   PRIMARY KEY,
    creation_timestamp     bigint NOT NULL,
    last_updated_timestamp bigint NOT NULL,
    description            text,
    -- Version numbers come from here under the row lock, so concurrent creates get 1, 2, … and never the same.
    last_version           integer NOT NULL DEFAULT 0
);

CREATE TABLE registered_model_tags (
    name  text NOT NULL REFERENCES registered_models ON UPDATE CASCADE ON DELETE CASCADE,
    key   text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (name, key)
);

CREATE TABLE model_versions (
    name                   text    NOT NULL REFERENCES registered_models ON UPDATE CASCADE ON DELETE CASCADE,
    version                integer NOT NULL,
    creation_timestamp     bigint  NOT NULL,
    last_updated_timestamp bigint  NOT NULL,
    description            text,
    user_id                text,
    current_stage          text    NOT NULL DEFAULT 'None' CHECK (current_stage IN ('None', 'Staging', 'Production', 'Archived')),
    source                 text    NOT NULL,
    run_id                 text,
    run_link               text,
    status                 text    NOT NULL DEFAULT 'READY',
    PRIMARY KEY (name, version)
);

CREATE TABLE model_version_tags (
    name    text    NOT NULL,
    version integer NOT NULL,
    key     text    NOT NULL,
    value   text    NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE TABLE registered_model_aliases (
    name    text    NOT NULL REFERENCES registered_models ON UPDATE CASCADE ON DELETE CASCADE,
    alias   text    NOT NULL,
    version integer NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions ON UPDATE CASCADE ON DELETE CASCADE
);

-- Every stage and alias change: who, when, from and to. Kept when the model is deleted.
CREATE TABLE registry_audit (
    id         bigserial PRIMARY KEY,
    name       text      NOT NULL,
    version    integer,
    change     text      NOT NULL CHECK (change IN ('stage', 'alias_set', 'alias_deleted')),
    subject    text      NOT NULL,
    from_value text,
    to_value   text,
    actor      text      NOT NULL,
    at         bigint    NOT NULL
);
CREATE INDEX registry_audit_by_model ON registry_audit (name, id);

INSERT INTO experiments (experiment_id, name, artifact_location, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', (extract(epoch FROM now()) * 1000)::bigint, (extract(epoch FROM now()) * 1000)::bigint);
