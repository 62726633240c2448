-- Latest version per stage (get-latest-versions, registered model views) without sorting every version.
CREATE INDEX model_versions_by_stage ON model_versions (name, current_stage, version DESC);
CREATE INDEX model_versions_by_run ON model_versions (run_id);
