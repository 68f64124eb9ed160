-- 0004: refreshes -- jobs, checkpoints, verdicts, approvals, promotions, events, webhooks.
--
-- Checkpoint states (DESIGN.md §1):
--   training -> candidate -> awaiting_approval -> approved -> production -> retired
--   with rejected and failed as ends; retired -> production again by a rollback.
-- Every transition is one function below, one transaction, and an event row.  The
-- daemon's role may only move a checkpoint along the machine's own path (and promote
-- what an operator approved); approving, rejecting, rolling back and registering a
-- first production checkpoint are functions only mnemo_operator may execute: the
-- database, not the CLI, keeps the daemon from approving its own work.
--
-- A checkpoint's files live at <daemon.data_dir>/checkpoints/<id>/: paths are built
-- from ids, never from text stored here.

-- ---------------------------------------------------------------- jobs

CREATE TABLE mnemo.jobs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind             text NOT NULL CHECK (kind IN ('refresh', 'promote')),
  state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  ckpt_id          bigint, -- promote: the approved checkpoint; refresh: its candidate, once made
  reason           text NOT NULL DEFAULT '',
  attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
  max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  run_after        timestamptz NOT NULL DEFAULT now(),
  lease_owner      text,
  lease_until      timestamptz,
  heartbeat_at     timestamptz,
  step             text NOT NULL DEFAULT '',
  progress         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(progress) = 'object'),
  watermark        bigint, -- refresh: documents with id <= watermark are its fresh data
  error            text,
  cancel_requested boolean NOT NULL DEFAULT false,
  requested_by     text NOT NULL DEFAULT session_user,
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz
);
-- at most one refresh in flight (one model per database)
CREATE UNIQUE INDEX jobs_one_refresh ON mnemo.jobs (kind)
  WHERE kind = 'refresh' AND state IN ('queued', 'running');
CREATE INDEX jobs_open ON mnemo.jobs (state, run_after) WHERE state IN ('queued', 'running');
COMMENT ON COLUMN mnemo.jobs.attempt IS
  'incremented by each claim; every write of the job''s results checks it (a fencing token)';
COMMENT ON COLUMN mnemo.jobs.lease_until IS
  'database clock; renewed by the heartbeat; a running job past it is taken back';

-- ---------------------------------------------------------------- checkpoints

CREATE TABLE mnemo.checkpoints (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  parent_id  bigint REFERENCES mnemo.checkpoints (id),
  state      text NOT NULL CHECK (state IN ('training', 'candidate', 'awaiting_approval',
                                            'approved', 'production', 'retired', 'rejected',
                                            'failed')),
  job_id     bigint UNIQUE REFERENCES mnemo.jobs (id), -- the refresh that made it
  watermark  bigint NOT NULL DEFAULT 0,
  sha256     text CHECK (sha256 ~ '^[0-9a-f]{64}$'), -- of the weights (checkpoint metadata)
  verdict    jsonb, -- what `mnemo guard --out` wrote, whole
  reasons    text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX checkpoints_one_production ON mnemo.checkpoints ((true))
  WHERE state = 'production';
ALTER TABLE mnemo.jobs ADD FOREIGN KEY (ckpt_id) REFERENCES mnemo.checkpoints (id);
ALTER TABLE mnemo.documents ADD FOREIGN KEY (consumed_by) REFERENCES mnemo.checkpoints (id);
CREATE INDEX documents_consumed_by ON mnemo.documents (consumed_by);
COMMENT ON COLUMN mnemo.checkpoints.watermark IS
  'train documents with id <= watermark not yet consumed were its fresh data';

-- one row per language of a candidate's verdict (the guard's table, queryable)
CREATE TABLE mnemo.verdicts (
  ckpt_id       bigint NOT NULL REFERENCES mnemo.checkpoints (id),
  lang          text NOT NULL,
  outcome       text NOT NULL,
  items         integer NOT NULL,
  baseline_bpb  double precision,
  candidate_bpb double precision,
  change        double precision,
  low           double precision,
  high          double precision,
  reason        text NOT NULL DEFAULT '',
  PRIMARY KEY (ckpt_id, lang)
);

CREATE TABLE mnemo.approvals (
  id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ckpt_id  bigint NOT NULL REFERENCES mnemo.checkpoints (id),
  decision text NOT NULL CHECK (decision IN ('approve', 'reject')),
  note     text NOT NULL DEFAULT '',
  by_user  text NOT NULL DEFAULT session_user,
  at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mnemo.promotions (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('bootstrap', 'promote', 'rollback')),
  ckpt_id     bigint NOT NULL REFERENCES mnemo.checkpoints (id), -- production after it
  previous_id bigint REFERENCES mnemo.checkpoints (id),          -- production before it
  job_id      bigint REFERENCES mnemo.jobs (id),
  documents   bigint NOT NULL DEFAULT 0, -- marked consumed (promote) or given back (rollback)
  note        text NOT NULL DEFAULT '',
  by_user     text NOT NULL DEFAULT session_user,
  at          timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------- events and webhooks

CREATE TABLE mnemo.events (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at      timestamptz NOT NULL DEFAULT now(),
  kind    text NOT NULL,
  ckpt_id bigint REFERENCES mnemo.checkpoints (id),
  job_id  bigint REFERENCES mnemo.jobs (id),
  actor   text NOT NULL DEFAULT session_user,
  detail  jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE mnemo.events IS 'the audit log: every transition, who made it, and why';

-- a webhook per event of the kinds below, written in the event's transaction, sent later
CREATE TABLE mnemo.outbox (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id     bigint NOT NULL UNIQUE REFERENCES mnemo.events (id),
  type         text NOT NULL,
  payload      jsonb NOT NULL,
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts     integer NOT NULL DEFAULT 0,
  next_at      timestamptz NOT NULL DEFAULT now(),
  last_error   text,
  delivered_at timestamptz
);
CREATE INDEX outbox_pending ON mnemo.outbox (next_at) WHERE state = 'pending';

CREATE FUNCTION mnemo.log_event(p_kind text, p_ckpt bigint, p_job bigint, p_detail jsonb)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e bigint;
BEGIN
  INSERT INTO mnemo.events (kind, ckpt_id, job_id, detail)
    VALUES (p_kind, p_ckpt, p_job, coalesce(p_detail, '{}')) RETURNING id INTO e;
  IF p_kind IN ('candidate_ready', 'candidate_rejected', 'promoted', 'rolled_back',
                'job_failed') THEN
    INSERT INTO mnemo.outbox (event_id, type, payload)
      VALUES (e, p_kind, jsonb_build_object('type', p_kind, 'timestamp', now(),
              'data', coalesce(p_detail, '{}') || jsonb_build_object('checkpoint', p_ckpt,
                                                                     'job', p_job)));
    PERFORM pg_notify('mnemo_outbox', e::text);
  END IF;
  RETURN e;
END
$$;

-- ---------------------------------------------------------------- transitions

-- the checkpoint a refresh trains, made once per job (a re-run finds it)
CREATE FUNCTION mnemo.checkpoint_create(p_job bigint, p_watermark bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c bigint;
  prod bigint;
BEGIN
  SELECT id INTO c FROM mnemo.checkpoints WHERE job_id = p_job;
  IF FOUND THEN
    RETURN c;
  END IF;
  SELECT id INTO prod FROM mnemo.checkpoints WHERE state = 'production';
  IF prod IS NULL THEN
    RAISE EXCEPTION 'no production checkpoint to refresh'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'register one with mnemoctl bootstrap';
  END IF;
  INSERT INTO mnemo.checkpoints (parent_id, state, job_id, watermark)
    VALUES (prod, 'training', p_job, p_watermark) RETURNING id INTO c;
  UPDATE mnemo.jobs SET ckpt_id = c WHERE id = p_job;
  PERFORM mnemo.log_event('checkpoint_training', c, p_job,
                          jsonb_build_object('parent', prod, 'watermark', p_watermark));
  RETURN c;
END
$$;

-- the daemon moves a checkpoint along the machine, nothing else
CREATE FUNCTION mnemo.checkpoint_advance(p_ckpt bigint, p_to text, p_reasons text,
                                         p_sha256 text, p_verdict jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c mnemo.checkpoints;
BEGIN
  SELECT * INTO c FROM mnemo.checkpoints WHERE id = p_ckpt FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no checkpoint %', p_ckpt USING ERRCODE = 'no_data_found';
  END IF;
  IF c.state = p_to THEN
    RETURN; -- a step re-run after a crash
  END IF;
  IF NOT ((c.state = 'training' AND p_to IN ('candidate', 'failed')) OR
          (c.state = 'candidate' AND p_to IN ('awaiting_approval', 'rejected', 'failed'))) THEN
    RAISE EXCEPTION 'checkpoint % is %: the daemon cannot make it %', p_ckpt, c.state, p_to
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE mnemo.checkpoints
     SET state = p_to, reasons = coalesce(p_reasons, reasons),
         sha256 = coalesce(p_sha256, sha256), verdict = coalesce(p_verdict, verdict),
         updated_at = now()
   WHERE id = p_ckpt;
  IF p_verdict IS NOT NULL THEN
    DELETE FROM mnemo.verdicts WHERE ckpt_id = p_ckpt;
    INSERT INTO mnemo.verdicts (ckpt_id, lang, outcome, items, baseline_bpb, candidate_bpb,
                                change, low, high, reason)
    SELECT p_ckpt, l->>'lang', l->>'outcome', coalesce((l->>'items')::integer, 0),
           (l->>'baseline_bpb')::float8, (l->>'candidate_bpb')::float8, (l->>'change')::float8,
           (l->'interval'->>0)::float8, (l->'interval'->>1)::float8, coalesce(l->>'reason', '')
      FROM jsonb_array_elements(p_verdict->'languages') l;
  END IF;
  PERFORM mnemo.log_event(CASE p_to WHEN 'awaiting_approval' THEN 'candidate_ready'
                                    WHEN 'rejected' THEN 'candidate_rejected'
                                    ELSE 'checkpoint_' || p_to END,
                          p_ckpt, c.job_id,
                          jsonb_build_object('from', c.state, 'to', p_to, 'reasons', p_reasons));
END
$$;

CREATE FUNCTION mnemo.decide(p_ckpt bigint, p_decision text, p_note text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c mnemo.checkpoints;
  j bigint;
BEGIN
  SELECT * INTO c FROM mnemo.checkpoints WHERE id = p_ckpt FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no checkpoint %', p_ckpt USING ERRCODE = 'no_data_found';
  END IF;
  IF c.state <> 'awaiting_approval' THEN
    RAISE EXCEPTION 'checkpoint % is %, not awaiting approval', p_ckpt, c.state
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF coalesce(p_note, '') = '' THEN
    RAISE EXCEPTION 'a decision needs a note (why)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO mnemo.approvals (ckpt_id, decision, note) VALUES (p_ckpt, p_decision, p_note);
  IF p_decision = 'approve' THEN
    UPDATE mnemo.checkpoints SET state = 'approved', updated_at = now() WHERE id = p_ckpt;
    INSERT INTO mnemo.jobs (kind, ckpt_id, reason) VALUES ('promote', p_ckpt, 'approved')
      RETURNING id INTO j;
    PERFORM mnemo.log_event('approved', p_ckpt, j, jsonb_build_object('note', p_note));
    PERFORM pg_notify('mnemo_jobs', j::text);
  ELSE
    UPDATE mnemo.checkpoints SET state = 'rejected', reasons = 'rejected by ' || session_user
           || ': ' || p_note, updated_at = now() WHERE id = p_ckpt;
    PERFORM mnemo.log_event('candidate_rejected', p_ckpt, c.job_id,
                            jsonb_build_object('note', p_note, 'by', session_user));
  END IF;
  RETURN j;
END
$$;

CREATE FUNCTION mnemo.approve(p_ckpt bigint, p_note text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT mnemo.decide(p_ckpt, 'approve', p_note)
$$;
CREATE FUNCTION mnemo.reject(p_ckpt bigint, p_note text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM mnemo.decide(p_ckpt, 'reject', p_note);
END
$$;

-- the daemon promotes what an operator approved: production pointer, promotion row,
-- documents consumed, one transaction
CREATE FUNCTION mnemo.promote(p_ckpt bigint, p_job bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c mnemo.checkpoints;
  prev bigint;
  n bigint;
BEGIN
  SELECT * INTO c FROM mnemo.checkpoints WHERE id = p_ckpt FOR UPDATE;
  IF c.state = 'production' THEN
    RETURN 0; -- promoted already: a re-run after a crash
  END IF;
  IF c.state IS DISTINCT FROM 'approved' OR NOT EXISTS (
       SELECT 1 FROM mnemo.approvals a WHERE a.ckpt_id = p_ckpt AND a.decision = 'approve') THEN
    RAISE EXCEPTION 'checkpoint % is not approved', p_ckpt
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT id INTO prev FROM mnemo.checkpoints WHERE state = 'production' FOR UPDATE;
  UPDATE mnemo.checkpoints SET state = 'retired', updated_at = now() WHERE id = prev;
  UPDATE mnemo.checkpoints SET state = 'production', updated_at = now() WHERE id = p_ckpt;
  UPDATE mnemo.documents SET consumed_by = p_ckpt
   WHERE consumed_by IS NULL AND split = 'train' AND id <= c.watermark;
  GET DIAGNOSTICS n = ROW_COUNT;
  INSERT INTO mnemo.promotions (kind, ckpt_id, previous_id, job_id, documents)
    VALUES ('promote', p_ckpt, prev, p_job, n);
  PERFORM mnemo.log_event('promoted', p_ckpt, p_job,
                          jsonb_build_object('previous', prev, 'documents', n));
  RETURN n;
END
$$;

-- the operator's undo: the production checkpoint before this one comes back; the
-- documents the undone one consumed are fresh again
CREATE FUNCTION mnemo.rollback(p_note text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cur bigint;
  prev bigint;
  n bigint;
BEGIN
  SELECT id INTO cur FROM mnemo.checkpoints WHERE state = 'production' FOR UPDATE;
  IF cur IS NULL THEN
    RAISE EXCEPTION 'no production checkpoint' USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT previous_id INTO prev FROM mnemo.promotions WHERE ckpt_id = cur ORDER BY id DESC LIMIT 1;
  IF prev IS NULL THEN
    RAISE EXCEPTION 'checkpoint % has no previous production checkpoint', cur
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF coalesce(p_note, '') = '' THEN
    RAISE EXCEPTION 'a rollback needs a note (why)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE mnemo.checkpoints SET state = 'retired', updated_at = now() WHERE id = cur;
  UPDATE mnemo.checkpoints SET state = 'production', updated_at = now() WHERE id = prev;
  UPDATE mnemo.documents SET consumed_by = NULL WHERE consumed_by = cur;
  GET DIAGNOSTICS n = ROW_COUNT;
  INSERT INTO mnemo.promotions (kind, ckpt_id, previous_id, documents, note)
    VALUES ('rollback', prev, cur, n, p_note);
  PERFORM mnemo.log_event('rolled_back', prev, NULL,
                          jsonb_build_object('from', cur, 'documents', n, 'note', p_note));
  RETURN prev;
END
$$;

-- the first production checkpoint; documents with id <= p_trained_through are what it
-- was trained on (consumed by it)
CREATE FUNCTION mnemo.bootstrap(p_trained_through bigint, p_sha256 text, p_note text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c bigint;
  n bigint;
BEGIN
  LOCK TABLE mnemo.checkpoints IN SHARE ROW EXCLUSIVE MODE;
  IF EXISTS (SELECT 1 FROM mnemo.checkpoints WHERE state = 'production') THEN
    RAISE EXCEPTION 'a production checkpoint exists already'
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  INSERT INTO mnemo.checkpoints (state, watermark, sha256)
    VALUES ('production', coalesce(p_trained_through, 0), p_sha256) RETURNING id INTO c;
  UPDATE mnemo.documents SET consumed_by = c
   WHERE consumed_by IS NULL AND split = 'train' AND id <= coalesce(p_trained_through, 0);
  GET DIAGNOSTICS n = ROW_COUNT;
  INSERT INTO mnemo.promotions (kind, ckpt_id, documents, note)
    VALUES ('bootstrap', c, n, coalesce(p_note, ''));
  PERFORM mnemo.log_event('bootstrapped', c, NULL, jsonb_build_object('documents', n));
  RETURN c;
END
$$;

-- a refresh now (mnemoctl refresh, the schedule, the fresh-data threshold); the one
-- already queued or running is returned instead of a second
CREATE FUNCTION mnemo.request_refresh(p_reason text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j bigint;
BEGIN
  INSERT INTO mnemo.jobs (kind, reason) VALUES ('refresh', coalesce(p_reason, ''))
    ON CONFLICT (kind) WHERE kind = 'refresh' AND state IN ('queued', 'running') DO NOTHING
    RETURNING id INTO j;
  IF j IS NULL THEN
    SELECT id INTO j FROM mnemo.jobs
     WHERE kind = 'refresh' AND state IN ('queued', 'running');
  ELSE
    PERFORM mnemo.log_event('refresh_requested', NULL, j,
                            jsonb_build_object('reason', p_reason));
    PERFORM pg_notify('mnemo_jobs', j::text);
  END IF;
  RETURN j;
END
$$;

CREATE FUNCTION mnemo.cancel_job(p_job bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s text;
BEGIN
  SELECT state INTO s FROM mnemo.jobs WHERE id = p_job FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no job %', p_job USING ERRCODE = 'no_data_found';
  END IF;
  IF s = 'queued' THEN
    UPDATE mnemo.jobs SET state = 'cancelled', finished_at = now(), error = 'cancelled by '
           || session_user WHERE id = p_job;
    s := 'cancelled';
  ELSIF s = 'running' THEN
    UPDATE mnemo.jobs SET cancel_requested = true WHERE id = p_job;
    s := 'cancelling';
  ELSE
    RAISE EXCEPTION 'job % is % already', p_job, s
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  PERFORM mnemo.log_event('cancel_requested', NULL, p_job, '{}');
  PERFORM pg_notify('mnemo_jobs', p_job::text);
  RETURN s;
END
$$;

-- ---------------------------------------------------------------- privileges

REVOKE EXECUTE ON FUNCTION mnemo.log_event(text, bigint, bigint, jsonb),
  mnemo.checkpoint_create(bigint, bigint), mnemo.checkpoint_advance(bigint, text, text, text, jsonb), mnemo.decide(bigint, text, text),
  mnemo.approve(bigint, text), mnemo.reject(bigint, text), mnemo.promote(bigint, bigint),
  mnemo.rollback(text), mnemo.bootstrap(bigint, text, text), mnemo.request_refresh(text),
  mnemo.cancel_job(bigint) FROM PUBLIC;

GRANT SELECT ON mnemo.jobs, mnemo.checkpoints, mnemo.verdicts, mnemo.approvals,
  mnemo.promotions, mnemo.events, mnemo.outbox TO mnemo_daemon, mnemo_operator;

-- mnemo_daemon: run jobs (claim, heartbeat, progress, finish), advance and promote
-- checkpoints, record events, deliver webhooks.  Never approve, reject or roll back.
GRANT UPDATE (state, attempt, max_attempts, run_after, lease_owner, lease_until, heartbeat_at,
  step, progress, watermark, error, started_at, finished_at) ON mnemo.jobs TO mnemo_daemon;
GRANT UPDATE (state, attempts, next_at, last_error, delivered_at) ON mnemo.outbox TO mnemo_daemon;
-- documents are consumed by a promotion only (mnemo.promote, rollback, bootstrap), never by a
-- bare UPDATE: 0003 granted that before checkpoints existed
REVOKE UPDATE (consumed_by) ON mnemo.documents FROM mnemo_daemon;
GRANT EXECUTE ON FUNCTION mnemo.log_event(text, bigint, bigint, jsonb),
  mnemo.checkpoint_create(bigint, bigint),
  mnemo.checkpoint_advance(bigint, text, text, text, jsonb),
  mnemo.promote(bigint, bigint), mnemo.request_refresh(text) TO mnemo_daemon;

-- mnemo_operator: decide, undo, start and stop refreshes
GRANT EXECUTE ON FUNCTION mnemo.approve(bigint, text), mnemo.reject(bigint, text),
  mnemo.rollback(text), mnemo.bootstrap(bigint, text, text), mnemo.request_refresh(text),
  mnemo.cancel_job(bigint) TO mnemo_operator;
