-- 0001: the mnemo namespace, its roles, and the ledger of applied migrations.
--
-- Roles are cluster-wide and NOLOGIN: deployments grant them to login users
-- (GRANT mnemo_operator TO alice).  They may already exist when a second
-- database in the same cluster is migrated, so they are created only if absent.
--   mnemo_daemon    runs refreshes; can never approve a promotion
--   mnemo_operator  approves, rejects, triages
--   mnemo_reporter  can only insert user reports
--   mnemo_ingest    can only insert documents
-- Later migrations grant each role exactly what its job needs.

CREATE SCHEMA mnemo;
REVOKE ALL ON SCHEMA mnemo FROM PUBLIC;

DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['mnemo_daemon', 'mnemo_operator', 'mnemo_reporter', 'mnemo_ingest'] LOOP
    -- the migration lock covers one database, roles the whole cluster: two databases
    -- migrated at once may both try to create a role, and one of them loses the race
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END LOOP;
END
$$;

GRANT USAGE ON SCHEMA mnemo TO mnemo_daemon, mnemo_operator, mnemo_reporter, mnemo_ingest;

CREATE TABLE mnemo.schema_migrations (
  version     integer PRIMARY KEY CHECK (version > 0),
  name        text NOT NULL CHECK (name ~ '^[a-z0-9_]+$'),
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  applied_at  timestamptz NOT NULL DEFAULT now(),
  duration_ms double precision NOT NULL CHECK (duration_ms >= 0)
);
COMMENT ON TABLE mnemo.schema_migrations IS
  'one row per applied migrations/NNNN_name.sql, written in the same transaction as the file';

GRANT SELECT ON mnemo.schema_migrations TO mnemo_daemon, mnemo_operator;
