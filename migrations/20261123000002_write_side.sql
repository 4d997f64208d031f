-- The write side's registry: small tables kept in step with the events, in the transaction that
-- inserts them (event-store's `PgEventRepository::persist`). The aggregates' `Services` read them
-- for invariants across aggregates (unique username / e-mail, "user exists and is active",
-- project membership) and the command API reads them for login. Never the read side.
--
-- The unique indexes are the real guarantee of uniqueness: the look-ups only give the early,
-- clear error; two registrations racing past them collide here, and the later one rolls back.
-- Their names are matched in event-store/src/error.rs.

CREATE TABLE user_registry
(
    user_id          uuid    PRIMARY KEY,
    -- As registered (already lowercase, see `Username::parse`); unique case-insensitively.
    username         text    NOT NULL,
    -- `Email::normalized()` (lowercase): the uniqueness and look-up key.
    email_normalized text    NOT NULL,
    -- The current password hash (PHC string), for login.
    password_hash    text    NOT NULL,
    role             text    NOT NULL CHECK (role IN ('user', 'admin')),
    active           boolean NOT NULL
);

CREATE UNIQUE INDEX user_registry_username_key ON user_registry (lower(username));
CREATE UNIQUE INDEX user_registry_email_key ON user_registry (email_normalized);

CREATE TABLE project_registry
(
    project_id uuid    PRIMARY KEY,
    owner_id   uuid    NOT NULL,
    archived   boolean NOT NULL
);

-- Members other than the owner (as in the `Project` aggregate).
CREATE TABLE project_members
(
    project_id uuid NOT NULL REFERENCES project_registry (project_id),
    user_id    uuid NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
