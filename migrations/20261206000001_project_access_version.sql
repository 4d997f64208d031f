-- Who may work in a project (owner, members, archived) as task commands see it (issue 17): the
-- command API keeps its recent answers in memory, each with this counter. Every change to the
-- members or the archived flag adds one to it, in the transaction of that change's event; a
-- task command's commit inserts its events only if the counter is still the one its answer had.
ALTER TABLE project_registry
    ADD COLUMN IF NOT EXISTS access_version bigint NOT NULL DEFAULT 0;
