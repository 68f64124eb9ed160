-- 0007: the guard in the loop.  A refresh whose candidate a guard rejects for languages it
-- could have replayed more is retried once, on the same documents, with those languages'
-- replay shares multiplied (guards.retry_boost; docs/adaptive-safeguards.md).  The retry is
-- a refresh job of its own that names the job it retries and what it protects; the card of
-- a checkpoint it makes says so.

ALTER TABLE mnemo.jobs
  ADD COLUMN retry_of bigint REFERENCES mnemo.jobs (id),
  ADD COLUMN protect text NOT NULL DEFAULT ''
    CHECK (length(protect) < 1024 AND
           protect ~ '^([a-z]{2,8}:[0-9]+(\.[0-9]+)?(,[a-z]{2,8}:[0-9]+(\.[0-9]+)?)*)?$');
-- once: a job is retried at most once, and a retry is never retried (guard_retry)
CREATE UNIQUE INDEX jobs_retry_once ON mnemo.jobs (retry_of) WHERE retry_of IS NOT NULL;
COMMENT ON COLUMN mnemo.jobs.retry_of IS
  'refresh: the refresh whose rejected candidate it retries (guard in the loop)';
COMMENT ON COLUMN mnemo.jobs.protect IS
  'refresh: "deu:3,hin:3", the factors on the replay shares of the languages the retried '
  'candidate failed (the job''s finetune.guard_boosts)';

-- guard_retry -- queue the retry of refresh p_job, which has just finished with its candidate
-- rejected, protecting p_protect ("lang:factor,..."; each language one its candidate failed,
-- each factor above 1); NULL when it may not be retried (it is a retry itself, was retried
-- already, an operator asked to cancel it, or another refresh is queued or running).  Only
-- in the transaction that finished the job (the daemon's, recording the verdict): an old
-- rejected refresh cannot be retried later.
CREATE FUNCTION mnemo.guard_retry(p_job bigint, p_protect text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j mnemo.jobs;
  k text;
  r bigint;
BEGIN
  SELECT * INTO j FROM mnemo.jobs WHERE id = p_job FOR UPDATE;
  IF NOT FOUND OR j.kind <> 'refresh' OR j.state <> 'succeeded'
     OR j.finished_at IS DISTINCT FROM now() THEN
    RAISE EXCEPTION 'job % is not a refresh finished in this transaction', p_job
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT state INTO k FROM mnemo.checkpoints WHERE id = j.ckpt_id;
  IF k IS DISTINCT FROM 'rejected' THEN
    RAISE EXCEPTION 'refresh %''s candidate was not rejected', p_job
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF coalesce(p_protect, '') = '' OR EXISTS (
       SELECT 1 FROM unnest(string_to_array(p_protect, ',')) e
        WHERE CASE WHEN split_part(e, ':', 2) ~ '^[0-9]+(\.[0-9]+)?$'
                   THEN split_part(e, ':', 2)::float8 <= 1 ELSE true END
           OR NOT EXISTS (SELECT 1 FROM mnemo.verdicts v WHERE v.ckpt_id = j.ckpt_id
                             AND v.lang = split_part(e, ':', 1) AND v.outcome = 'fail')) THEN
    RAISE EXCEPTION 'refresh % cannot protect "%": each entry must be a language its candidate failed, at a factor above 1',
      p_job, p_protect USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF j.retry_of IS NOT NULL OR j.cancel_requested THEN
    RETURN NULL;
  END IF;
  INSERT INTO mnemo.jobs (kind, reason, watermark, retry_of, protect)
    VALUES ('refresh', format('guard retry of refresh %s, protecting %s', p_job, p_protect),
            j.watermark, p_job, p_protect)
    ON CONFLICT DO NOTHING
    RETURNING id INTO r;
  IF r IS NOT NULL THEN
    PERFORM mnemo.log_event('refresh_requested', NULL, r,
                            jsonb_build_object('reason', 'guard retry', 'retry_of', p_job,
                                               'protect', p_protect));
    PERFORM pg_notify('mnemo_jobs', r::text);
  END IF;
  RETURN r;
END
$$;
REVOKE EXECUTE ON FUNCTION mnemo.guard_retry(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mnemo.guard_retry(bigint, text) TO mnemo_daemon;
