-- 0008: what the console and /metrics read -- each checkpoint's numbers per language and
-- each language's history across promotions (docs/console.md).
--
-- A checkpoint's bits per byte of a language are what its guard verdict measured: its own
-- candidate numbers when it was judged, else (a bootstrapped production checkpoint) the
-- baseline numbers of its first judged child.  Each verdict measured on the evaluation set
-- of its day: the history is "as judged", not one fixed yardstick.  Views, so that
-- operators and the daemon read them without reading the verdicts' whole JSON.

CREATE VIEW mnemo.checkpoint_numbers AS
  WITH judged AS (
    SELECT DISTINCT ckpt_id FROM mnemo.verdicts WHERE candidate_bpb IS NOT NULL),
  -- a checkpoint never judged itself (a bootstrap) takes its first judged child's baseline
  heir AS (
    SELECT c.parent_id AS ckpt_id, min(c.id) AS child
      FROM mnemo.checkpoints c JOIN judged j ON j.ckpt_id = c.id
     WHERE c.parent_id IS NOT NULL AND c.parent_id NOT IN (SELECT ckpt_id FROM judged)
     GROUP BY c.parent_id),
  src AS (
    SELECT ckpt_id, ckpt_id AS verdict_of, true AS own FROM judged
    UNION ALL
    SELECT ckpt_id, child, false FROM heir),
  parity AS (
    SELECT s.ckpt_id, x->>'lang' AS lang,
           (x->>CASE WHEN s.own THEN 'candidate_bits_per_char'
                     ELSE 'baseline_bits_per_char' END)::double precision AS bits_per_char
      FROM src s JOIN mnemo.checkpoints c ON c.id = s.verdict_of,
           jsonb_array_elements(CASE jsonb_typeof(c.verdict->'parity'->'languages')
                                  WHEN 'array' THEN c.verdict->'parity'->'languages'
                                  ELSE '[]'::jsonb END) x)
  SELECT s.ckpt_id, v.lang,
         CASE WHEN s.own THEN v.candidate_bpb ELSE v.baseline_bpb END AS bpb, p.bits_per_char
    FROM src s
    JOIN mnemo.verdicts v ON v.ckpt_id = s.verdict_of
    LEFT JOIN parity p ON p.ckpt_id = s.ckpt_id AND p.lang = v.lang;
COMMENT ON VIEW mnemo.checkpoint_numbers IS
  'bits per byte (and per character of parallel text) of each checkpoint per language, as '
  'its verdict measured them, or its first judged child''s baseline numbers';

-- every promotion (bootstrap, promote, rollback) with production's numbers after it; a
-- promotion's change and interval are its verdict's (promote only)
CREATE VIEW mnemo.language_history AS
  SELECT p.id AS promotion, p.at, p.kind, p.ckpt_id, n.lang, n.bpb, n.bits_per_char,
         v.change, v.low, v.high
    FROM mnemo.promotions p
    JOIN mnemo.checkpoint_numbers n ON n.ckpt_id = p.ckpt_id
    LEFT JOIN mnemo.verdicts v ON v.ckpt_id = p.ckpt_id AND v.lang = n.lang AND p.kind = 'promote';
COMMENT ON VIEW mnemo.language_history IS
  'per language, production''s numbers after each promotion, with the change its verdict '
  'measured';

GRANT SELECT ON mnemo.checkpoint_numbers, mnemo.language_history TO mnemo_daemon, mnemo_operator;

-- cancel_job, again: a running refresh's candidate fails at once, in the cancel's own
-- transaction (before, it stayed "training" until the daemon's next heartbeat noticed)
CREATE OR REPLACE FUNCTION mnemo.cancel_job(p_job bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j mnemo.jobs;
  s text;
  cs text;
BEGIN
  SELECT * INTO j FROM mnemo.jobs WHERE id = p_job FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no job %', p_job USING ERRCODE = 'no_data_found';
  END IF;
  s := j.state;
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
  IF j.kind = 'refresh' AND j.ckpt_id IS NOT NULL THEN
    SELECT state INTO cs FROM mnemo.checkpoints WHERE id = j.ckpt_id FOR UPDATE;
    IF cs IN ('training', 'candidate') THEN -- the event as checkpoint_advance writes it
      UPDATE mnemo.checkpoints SET state = 'failed', reasons = 'cancelled by ' || session_user,
             updated_at = now()
       WHERE id = j.ckpt_id;
      PERFORM mnemo.log_event('checkpoint_failed', j.ckpt_id, p_job,
                              jsonb_build_object('from', cs, 'to', 'failed', 'reasons',
                                                 'cancelled by ' || session_user));
    END IF;
  END IF;
  PERFORM mnemo.log_event('cancel_requested', NULL, p_job, '{}');
  PERFORM pg_notify('mnemo_jobs', p_job::text);
  RETURN s;
END
$$;
