-- 0006: rollback walks back the production chain; what is consumed is what production
-- was trained on; the daemon records only its own events; reporters see their own reports.
--
-- The production chain is the checkpoints' parent_id links: a refresh trains a candidate
-- from the production checkpoint of its day (its parent), and a candidate may now be
-- approved and promoted only while its parent is still production, so every production
-- checkpoint's parent is the one it replaced.  mnemo.rollback() makes the parent
-- production again; repeated, it walks back to the base and then refuses.  A checkpoint
-- that was production once can come back only when asked by id (rollback(note, id)).
--
-- What a refresh trains on.  0004 took "train documents up to the watermark, not yet
-- consumed" twice: when the refresh exported its fresh data and when the promotion marked
-- them consumed.  A document whose ingest committed in between with an id below the
-- watermark (ids are handed out before commit) was marked consumed without ever being
-- trained on.  mnemo.trained_on now records the fresh set once, when the candidate's row is
-- made; the export reads it and the promotion absorbs exactly it.
--
-- Consumption.  mnemo.consumptions remembers, for good, which documents each promotion
-- (or bootstrap) absorbed; documents.consumed_by is derived from it: a document is
-- consumed by the checkpoint of the production chain that absorbed it, or by none.  Every
-- change of production (promote, rollback either way) re-derives it in its transaction,
-- so the consumed set always equals what production was trained on.  0004's rollback
-- looked at the latest promotions row, whose previous_id after a rollback is the
-- checkpoint just undone: repeated rollbacks flipped between two checkpoints and left the
-- consumed set wrong.

-- ---------------------------------------------------------------- consumptions

CREATE TABLE mnemo.consumptions (
  ckpt_id bigint NOT NULL REFERENCES mnemo.checkpoints (id),
  doc_id  bigint NOT NULL REFERENCES mnemo.documents (id),
  PRIMARY KEY (ckpt_id, doc_id)
);
CREATE INDEX consumptions_doc ON mnemo.consumptions (doc_id);
COMMENT ON TABLE mnemo.consumptions IS
  'which documents each promotion or bootstrap absorbed; never deleted (a rollback keeps it)';
-- what is consumed now is what was absorbed; documents given back by 0004's rollbacks
-- cannot be told apart from fresh ones any more
INSERT INTO mnemo.consumptions (ckpt_id, doc_id)
  SELECT consumed_by, id FROM mnemo.documents WHERE consumed_by IS NOT NULL;

CREATE TABLE mnemo.trained_on (
  ckpt_id bigint NOT NULL REFERENCES mnemo.checkpoints (id),
  doc_id  bigint NOT NULL REFERENCES mnemo.documents (id),
  PRIMARY KEY (ckpt_id, doc_id)
);
COMMENT ON TABLE mnemo.trained_on IS
  'the fresh documents a refresh trains its candidate on, recorded with the candidate''s row';
ALTER TABLE mnemo.checkpoints ADD COLUMN fresh_recorded boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN mnemo.checkpoints.fresh_recorded IS
  'its fresh documents are in mnemo.trained_on (false: made before 0006, the watermark rule)';

-- chain -- a checkpoint and its ancestors (parent_id links), itself first
CREATE FUNCTION mnemo.chain(p_ckpt bigint) RETURNS TABLE (id bigint, depth integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE c (id, parent_id, depth) AS (
    SELECT k.id, k.parent_id, 0 FROM mnemo.checkpoints k WHERE k.id = p_ckpt
    UNION ALL
    SELECT k.id, k.parent_id, c.depth + 1 FROM mnemo.checkpoints k JOIN c ON k.id = c.parent_id
  )
  SELECT id, depth FROM c
$$;

-- consume_as -- make documents.consumed_by what p_ckpt's chain absorbed; returns the
-- documents given back (freed) and taken again (retaken)
CREATE FUNCTION mnemo.consume_as(p_ckpt bigint, OUT freed bigint, OUT retaken bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE mnemo.documents d SET consumed_by = NULL
   WHERE d.consumed_by IS NOT NULL
     AND d.consumed_by NOT IN (SELECT c.id FROM mnemo.chain(p_ckpt) c);
  GET DIAGNOSTICS freed = ROW_COUNT;
  UPDATE mnemo.documents d SET consumed_by = x.ckpt_id
    FROM mnemo.consumptions x
   WHERE x.doc_id = d.id AND d.consumed_by IS DISTINCT FROM x.ckpt_id
     AND x.ckpt_id IN (SELECT c.id FROM mnemo.chain(p_ckpt) c);
  GET DIAGNOSTICS retaken = ROW_COUNT;
END
$$;

-- ---------------------------------------------------------------- transitions

-- the checkpoint a refresh trains, made once per job (a re-run finds it), with the fresh
-- documents it trains on: the train documents up to the watermark that no checkpoint of
-- production's chain absorbed, as committed now (one committed later stays fresh)
CREATE OR REPLACE FUNCTION mnemo.checkpoint_create(p_job bigint, p_watermark bigint)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c bigint;
  prod bigint;
  j mnemo.jobs;
BEGIN
  SELECT id INTO c FROM mnemo.checkpoints WHERE job_id = p_job;
  IF FOUND THEN
    RETURN c;
  END IF;
  SELECT * INTO j FROM mnemo.jobs WHERE id = p_job;
  IF NOT FOUND OR j.kind <> 'refresh' OR j.state <> 'running' THEN
    RAISE EXCEPTION 'job % is not a running refresh', p_job
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT id INTO prod FROM mnemo.checkpoints WHERE state = 'production' FOR SHARE;
  IF prod IS NULL THEN
    RAISE EXCEPTION 'no production checkpoint to refresh'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'register one with mnemoctl bootstrap';
  END IF;
  INSERT INTO mnemo.checkpoints (parent_id, state, job_id, watermark, fresh_recorded)
    VALUES (prod, 'training', p_job, p_watermark, true) RETURNING id INTO c;
  INSERT INTO mnemo.trained_on (ckpt_id, doc_id)
    SELECT c, d.id FROM mnemo.documents d
     WHERE d.split = 'train' AND d.consumed_by IS NULL AND d.id <= p_watermark;
  UPDATE mnemo.jobs SET ckpt_id = c WHERE id = p_job;
  PERFORM mnemo.log_event('checkpoint_training', c, p_job,
                          jsonb_build_object('parent', prod, 'watermark', p_watermark));
  RETURN c;
END
$$;

-- production -- the production checkpoint, its row share-locked: a transition that
-- depends on which checkpoint is production holds it until it commits, so a rollback or
-- promotion waits (and one that committed first is seen: after a wait the locked row may
-- no longer match, and a new statement looks again)
CREATE FUNCTION mnemo.production() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p bigint;
BEGIN
  FOR i IN 1..3 LOOP
    SELECT id INTO p FROM mnemo.checkpoints WHERE state = 'production' FOR SHARE;
    IF p IS NOT NULL THEN
      RETURN p;
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

-- a candidate reaches the operators only while its baseline (parent) is production: the
-- verdict compared it with that baseline, not with whatever production is now
CREATE OR REPLACE FUNCTION mnemo.checkpoint_advance(p_ckpt bigint, p_to text, p_reasons text,
                                                    p_sha256 text, p_verdict jsonb)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c mnemo.checkpoints;
  prod bigint;
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
  IF p_to = 'awaiting_approval' THEN
    prod := mnemo.production();
    IF prod IS DISTINCT FROM c.parent_id THEN
      p_to := 'rejected';
      p_reasons := format('its baseline, checkpoint %s, is no longer production (%s is)',
                          c.parent_id, coalesce(prod::text, 'none'));
    END IF;
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

CREATE OR REPLACE FUNCTION mnemo.decide(p_ckpt bigint, p_decision text, p_note text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c mnemo.checkpoints;
  prod bigint;
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
  IF btrim(coalesce(p_note, ''), E' \t\r\n') = '' THEN
    RAISE EXCEPTION 'a decision needs a note (why)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_decision = 'approve' THEN
    prod := mnemo.production();
    IF prod IS DISTINCT FROM c.parent_id THEN
      RAISE EXCEPTION 'checkpoint % was judged against checkpoint %, which is no longer production',
                      p_ckpt, c.parent_id
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'reject it, and request a refresh of the current production';
    END IF;
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

CREATE OR REPLACE FUNCTION mnemo.promote(p_ckpt bigint, p_job bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c mnemo.checkpoints;
  prev bigint;
  n bigint;
BEGIN
  SELECT id INTO prev FROM mnemo.checkpoints WHERE state = 'production' FOR UPDATE;
  SELECT * INTO c FROM mnemo.checkpoints WHERE id = p_ckpt FOR UPDATE;
  IF c.state = 'production' THEN
    RETURN 0; -- promoted already: a re-run after a crash
  END IF;
  IF c.state IS DISTINCT FROM 'approved' OR NOT EXISTS (
       SELECT 1 FROM mnemo.approvals a WHERE a.ckpt_id = p_ckpt AND a.decision = 'approve') THEN
    RAISE EXCEPTION 'checkpoint % is not approved', p_ckpt
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF prev IS DISTINCT FROM c.parent_id THEN -- rollback rejects these; belt and braces
    RAISE EXCEPTION 'checkpoint % was trained from checkpoint %, which is no longer production',
                    p_ckpt, c.parent_id USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE mnemo.checkpoints SET state = 'retired', updated_at = now() WHERE id = prev;
  UPDATE mnemo.checkpoints SET state = 'production', updated_at = now() WHERE id = p_ckpt;
  WITH m AS (
    UPDATE mnemo.documents d SET consumed_by = p_ckpt
     WHERE d.consumed_by IS NULL AND d.split = 'train' AND d.id <= c.watermark
       AND (NOT c.fresh_recorded OR EXISTS (SELECT 1 FROM mnemo.trained_on t
                                             WHERE t.ckpt_id = p_ckpt AND t.doc_id = d.id))
    RETURNING d.id)
  INSERT INTO mnemo.consumptions (ckpt_id, doc_id) SELECT p_ckpt, m.id FROM m;
  GET DIAGNOSTICS n = ROW_COUNT;
  INSERT INTO mnemo.promotions (kind, ckpt_id, previous_id, job_id, documents)
    VALUES ('promote', p_ckpt, prev, p_job, n);
  PERFORM mnemo.log_event('promoted', p_ckpt, p_job,
                          jsonb_build_object('previous', prev, 'documents', n));
  RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION mnemo.bootstrap(p_trained_through bigint, p_sha256 text, p_note text)
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
  WITH m AS (
    UPDATE mnemo.documents SET consumed_by = c
     WHERE consumed_by IS NULL AND split = 'train' AND id <= coalesce(p_trained_through, 0)
    RETURNING id)
  INSERT INTO mnemo.consumptions (ckpt_id, doc_id) SELECT c, m.id FROM m;
  GET DIAGNOSTICS n = ROW_COUNT;
  INSERT INTO mnemo.promotions (kind, ckpt_id, documents, note)
    VALUES ('bootstrap', c, n, coalesce(p_note, ''));
  PERFORM mnemo.log_event('bootstrapped', c, NULL, jsonb_build_object('documents', n));
  RETURN c;
END
$$;

-- the operator's undo.  Without p_to: production's parent comes back (a walk back the
-- chain; the base refuses).  With p_to: that checkpoint, which must have been production
-- before.  Either way the documents counted as consumed become what the new production
-- was trained on, and candidates judged against another baseline are rejected.
DROP FUNCTION mnemo.rollback(text);
CREATE FUNCTION mnemo.rollback(p_note text, p_to bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cur mnemo.checkpoints;
  target bigint;
  t text;
  moved record;
  stale bigint;
BEGIN
  FOR i IN 1..3 LOOP -- a rollback or promotion that committed while we waited: look again
    SELECT * INTO cur FROM mnemo.checkpoints WHERE state = 'production' FOR UPDATE;
    EXIT WHEN FOUND;
  END LOOP;
  IF cur.id IS NULL THEN
    RAISE EXCEPTION 'no production checkpoint' USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF btrim(coalesce(p_note, ''), E' \t\r\n') = '' THEN
    RAISE EXCEPTION 'a rollback needs a note (why)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_to IS NULL THEN
    target := cur.parent_id;
    IF target IS NULL THEN
      RAISE EXCEPTION 'checkpoint % is the base of the production chain: there is nothing to roll back to',
                      cur.id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
  ELSE
    target := p_to;
    SELECT state INTO t FROM mnemo.checkpoints WHERE id = target FOR UPDATE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no checkpoint %', target USING ERRCODE = 'no_data_found';
    END IF;
    IF target = cur.id THEN
      RAISE EXCEPTION 'checkpoint % is production already', target
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF t <> 'retired' OR NOT EXISTS (SELECT 1 FROM mnemo.promotions m WHERE m.ckpt_id = target
                                        AND m.kind IN ('bootstrap', 'promote')) THEN
      RAISE EXCEPTION 'checkpoint % is %: only a checkpoint that was production before can be again',
                      target, t
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'a candidate becomes production by approval';
    END IF;
  END IF;
  UPDATE mnemo.checkpoints SET state = 'retired', updated_at = now() WHERE id = cur.id;
  UPDATE mnemo.checkpoints SET state = 'production', updated_at = now() WHERE id = target;
  SELECT * INTO moved FROM mnemo.consume_as(target);
  -- candidates before the operators were judged against another baseline: they cannot be
  -- promoted now (one still in its refresh is rejected when its verdict is recorded)
  WITH s AS (
    UPDATE mnemo.checkpoints SET state = 'rejected', updated_at = now(),
           reasons = format('its baseline, checkpoint %s, is no longer production', parent_id)
     WHERE state IN ('awaiting_approval', 'approved')
       AND parent_id IS DISTINCT FROM target RETURNING id)
  SELECT count(*) INTO stale FROM s;
  UPDATE mnemo.jobs SET state = 'cancelled', finished_at = now(),
         error = 'its checkpoint was rejected by a rollback'
   WHERE kind = 'promote' AND state = 'queued'
     AND ckpt_id IN (SELECT id FROM mnemo.checkpoints WHERE state = 'rejected');
  INSERT INTO mnemo.promotions (kind, ckpt_id, previous_id, documents, note)
    VALUES ('rollback', target, cur.id, moved.freed, p_note);
  PERFORM mnemo.log_event('rolled_back', target, NULL,
                          jsonb_build_object('from', cur.id, 'documents', moved.freed,
                                             'documents_retaken', moved.retaken,
                                             'candidates_rejected', stale, 'note', p_note));
  RETURN target;
END
$$;

-- a rollback undoes the fixes of every checkpoint it takes out of the chain
CREATE OR REPLACE FUNCTION mnemo.reports_unfix() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE mnemo.reports SET status = 'accepted', fixed_by = NULL, fixed_bits = NULL,
         notes = 'fix undone: checkpoint ' || fixed_by || ' was rolled back'
   WHERE fixed_by IS NOT NULL
     AND fixed_by NOT IN (SELECT c.id FROM mnemo.chain(NEW.ckpt_id) c);
  RETURN NULL;
END
$$;

-- ---------------------------------------------------------------- the daemon's own events

-- The daemon records the ends of its jobs and nothing else: log_event writes any kind
-- (and signed webhooks of promoted, rolled_back, …), so only the functions above may call
-- it.  The checkpoint is the job's own, never the caller's word.
CREATE FUNCTION mnemo.log_job_event(p_kind text, p_job bigint, p_detail jsonb)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j mnemo.jobs;
  want text;
BEGIN
  IF p_kind NOT IN ('job_failed', 'job_succeeded', 'job_cancelled', 'job_requeued') THEN
    RAISE EXCEPTION 'the daemon cannot record a % event', p_kind
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  SELECT * INTO j FROM mnemo.jobs WHERE id = p_job;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no job %', p_job USING ERRCODE = 'no_data_found';
  END IF;
  -- the event tells the state the job is in, and a job ends once
  want := CASE p_kind WHEN 'job_requeued' THEN 'queued' ELSE substr(p_kind, 5) END;
  IF j.state <> want OR (p_kind <> 'job_requeued' AND EXISTS (SELECT 1 FROM mnemo.events e
                                              WHERE e.job_id = p_job AND e.kind = p_kind)) THEN
    RAISE EXCEPTION 'job % is %: the daemon cannot record % for it', p_job, j.state, p_kind
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN mnemo.log_event(p_kind, j.ckpt_id, p_job, p_detail);
END
$$;
REVOKE EXECUTE ON FUNCTION mnemo.log_job_event(text, bigint, jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION mnemo.log_event(text, bigint, bigint, jsonb) FROM mnemo_daemon;
GRANT EXECUTE ON FUNCTION mnemo.log_job_event(text, bigint, jsonb) TO mnemo_daemon;

-- ---------------------------------------------------------------- reporters

-- what the person who reported sees, of their own reports only (operators and the daemon
-- see every report's); another's report reads as no report
CREATE OR REPLACE FUNCTION mnemo.report_status(p_id bigint) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE status
           WHEN 'new' THEN 'received'
           WHEN 'triaged' THEN 'under review'
           WHEN 'accepted' THEN 'accepted: the next model update will be checked against it'
           WHEN 'fixed' THEN 'fixed in model ' || fixed_by
           ELSE 'rejected: ' || notes
         END
    FROM mnemo.reports
   WHERE id = p_id
     AND (reporter = session_user OR pg_has_role(session_user, 'mnemo_operator', 'USAGE')
          OR pg_has_role(session_user, 'mnemo_daemon', 'USAGE'))
$$;

-- ---------------------------------------------------------------- privileges

REVOKE EXECUTE ON FUNCTION mnemo.chain(bigint), mnemo.consume_as(bigint), mnemo.production(),
  mnemo.rollback(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mnemo.chain(bigint) TO mnemo_daemon, mnemo_operator;
GRANT EXECUTE ON FUNCTION mnemo.rollback(text, bigint) TO mnemo_operator;
GRANT SELECT ON mnemo.consumptions, mnemo.trained_on TO mnemo_daemon, mnemo_operator;
