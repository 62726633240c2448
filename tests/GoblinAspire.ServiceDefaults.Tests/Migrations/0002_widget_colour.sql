ALTER TABLE widgets ADD COLUMN colour text NOT NULL DEFAULT 'green';
INSERT INTO widgets (name) VALUES ('seed');
