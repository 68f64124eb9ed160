-- 0005: triage of user reports -- what the daemon found in each report, the operator's
-- decision, the probe and sampling boost an accepted report becomes, and its fixing.
--
-- Reports of one problem form a group: the first report is the group's id, later
-- near-duplicates (MinHash over byte shingles, found by the daemon) point at it.  A
-- decision (accept, reject) is taken for a whole group, and a report joining an accepted
-- group is accepted with it.  An accepted group's first report is its probe.
-- Every change of status goes through a function below (docs/triage.md).

ALTER TABLE mnemo.reports
  ADD COLUMN group_id    bigint REFERENCES mnemo.reports (id),
  ADD COLUMN minhash     bytea CHECK (octet_length(minhash) = 256),
  ADD COLUMN triage      jsonb CHECK (jsonb_typeof(triage) = 'object'),
  ADD COLUMN triaged_at  timestamptz,
  ADD COLUMN probe_lang  text REFERENCES mnemo.languages (code),
  ADD COLUMN decided_by  text,
  ADD COLUMN decided_at  timestamptz,
  ADD COLUMN fixed_by    bigint REFERENCES mnemo.checkpoints (id),
  ADD COLUMN fixed_bits  double precision CHECK (fixed_bits >= 0),
  ADD CONSTRAINT reports_fixed_has_bits CHECK ((status = 'fixed') = (fixed_by IS NOT NULL AND fixed_bits IS NOT NULL)),
  ADD CONSTRAINT reports_accepted_has_lang CHECK (status NOT IN ('accepted', 'fixed') OR probe_lang IS NOT NULL);
CREATE INDEX reports_group ON mnemo.reports (group_id);
CREATE INDEX reports_new ON mnemo.reports (id) WHERE status = 'new';
COMMENT ON COLUMN mnemo.reports.group_id IS
  'the first report of the same problem (itself for the first); set by triage';
COMMENT ON COLUMN mnemo.reports.triage IS
  'what triage found: detected language and confidence, code-switched spans, bits per byte '
  'of the text and expected text, the language''s typical bits per byte, similarity';
COMMENT ON COLUMN mnemo.reports.probe_lang IS
  'the language whose guard the accepted report''s probe joins (the claimed one unless the '
  'operator said otherwise)';

-- triage_record -- the daemon's findings for a new report.  p_invalid set: the text is no
-- report (empty, binary, not UTF-8, huge, wrong script): rejected at once.  Otherwise the
-- report is triaged, in the group p_group when that is an open report of its language
-- (its own group else), accepted at once when that group was accepted.  Returns the status.
CREATE FUNCTION mnemo.triage_record(p_id bigint, p_detected text, p_severity double precision,
                                    p_group bigint, p_minhash bytea, p_triage jsonb,
                                    p_invalid text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r mnemo.reports;
  g mnemo.reports;
  st text := 'triaged';
BEGIN
  SELECT * INTO r FROM mnemo.reports WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no report %', p_id USING ERRCODE = 'no_data_found';
  END IF;
  IF r.status <> 'new' THEN
    RETURN r.status; -- triaged before (a re-run after a crash): nothing changes
  END IF;
  IF p_invalid IS NOT NULL THEN
    UPDATE mnemo.reports SET status = 'rejected', notes = 'invalid text: ' || p_invalid,
           triage = p_triage, triaged_at = now(), decided_by = session_user, decided_at = now()
     WHERE id = p_id;
    RETURN 'rejected';
  END IF;
  IF p_group IS NOT NULL AND p_group <> p_id THEN
    SELECT * INTO g FROM mnemo.reports WHERE id = p_group FOR UPDATE;
    IF NOT FOUND OR g.claimed_lang <> r.claimed_lang OR g.status NOT IN ('triaged', 'accepted')
       OR g.group_id IS DISTINCT FROM g.id THEN
      p_group := p_id; -- decided or regrouped meanwhile: a group of its own
    ELSIF g.status = 'accepted' THEN
      st := 'accepted';
    END IF;
  ELSE
    p_group := p_id;
  END IF;
  UPDATE mnemo.reports
     SET status = st, group_id = p_group, minhash = p_minhash, triage = p_triage,
         triaged_at = now(),
         detected_lang = CASE WHEN EXISTS (SELECT 1 FROM mnemo.iso639_3 WHERE code = p_detected)
                              THEN p_detected END,
         severity = p_severity,
         probe_lang = CASE WHEN st = 'accepted' THEN g.probe_lang END,
         notes = CASE WHEN st = 'accepted' THEN 'joined accepted report ' || p_group ELSE notes END
   WHERE id = p_id;
  RETURN st;
END
$$;

-- the group of a report, locked, or an error naming it
CREATE FUNCTION mnemo.report_group(p_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g bigint;
BEGIN
  SELECT coalesce(group_id, id) INTO g FROM mnemo.reports WHERE id = p_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no report %', p_id USING ERRCODE = 'no_data_found';
  END IF;
  PERFORM 1 FROM mnemo.reports WHERE coalesce(group_id, id) = g ORDER BY id FOR UPDATE;
  RETURN g;
END
$$;

-- triage_accept -- an operator accepts a report's group: its first report becomes a probe of
-- p_lang's guard (the claimed language when NULL) and the language's sampling is boosted.
-- Returns the number of reports accepted.
CREATE FUNCTION mnemo.triage_accept(p_id bigint, p_lang text, p_note text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g bigint := mnemo.report_group(p_id);
  r mnemo.reports;
  n bigint;
BEGIN
  SELECT * INTO r FROM mnemo.reports WHERE id = g;
  IF r.status NOT IN ('triaged', 'accepted') THEN
    RAISE EXCEPTION 'report % is %: only a triaged report can be accepted', p_id, r.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  p_lang := coalesce(p_lang, r.claimed_lang);
  IF NOT EXISTS (SELECT 1 FROM mnemo.languages WHERE code = p_lang AND enabled) THEN
    RAISE EXCEPTION 'language "%" is not an enabled language', p_lang
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE mnemo.reports
     SET status = 'accepted', probe_lang = p_lang, decided_by = session_user, decided_at = now(),
         notes = coalesce(nullif(p_note, ''), notes)
   WHERE coalesce(group_id, id) = g AND status IN ('triaged', 'accepted');
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM mnemo.log_event('report_accepted', NULL, NULL,
                          jsonb_build_object('report', g, 'lang', p_lang, 'reports', n,
                                             'by', session_user, 'note', p_note));
  RETURN n;
END
$$;

-- triage_reject -- an operator rejects a report's group, saying why
CREATE FUNCTION mnemo.triage_reject(p_id bigint, p_why text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g bigint := mnemo.report_group(p_id);
  n bigint;
BEGIN
  IF coalesce(btrim(p_why), '') = '' THEN
    RAISE EXCEPTION 'rejecting a report needs a reason (why)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE mnemo.reports
     SET status = 'rejected', notes = p_why, decided_by = session_user, decided_at = now()
   WHERE coalesce(group_id, id) = g AND status IN ('new', 'triaged', 'accepted');
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RAISE EXCEPTION 'report % is decided already', p_id
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  PERFORM mnemo.log_event('report_rejected', NULL, NULL,
                          jsonb_build_object('report', g, 'reports', n, 'by', session_user,
                                             'why', p_why));
  RETURN n;
END
$$;

-- reports_fix -- after checkpoint p_ckpt became production: each accepted group whose probe
-- its verdict scored is fixed when the probe passed and its bits fell by at least p_margin
-- against the baseline, or are no worse per byte than the language's held-out text under
-- the new checkpoint.  Returns the number of reports fixed.
CREATE FUNCTION mnemo.reports_fix(p_ckpt bigint, p_margin double precision)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb;
  n bigint := 0;
  k bigint;
  p record;
BEGIN
  SELECT verdict INTO v FROM mnemo.checkpoints WHERE id = p_ckpt AND state = 'production';
  IF v IS NULL THEN
    RETURN 0;
  END IF;
  FOR p IN
    SELECT (q ->> 'report')::bigint AS report, (q ->> 'candidate_bits')::float8 AS cand,
           (q ->> 'baseline_bits')::float8 AS base, (q ->> 'bytes')::float8 AS bytes,
           (SELECT (l ->> 'candidate_bpb')::float8 FROM jsonb_array_elements(v -> 'languages') l
             WHERE l ->> 'lang' = q ->> 'lang') AS typical
      FROM jsonb_array_elements(coalesce(v -> 'probes', '[]')) q
     WHERE q ->> 'outcome' = 'pass' AND q ->> 'status' = 'accepted'
       AND q ->> 'report' ~ '^[0-9]{1,18}$'
  LOOP
    IF p.cand <= (1 - p_margin) * p.base OR (p.bytes > 0 AND p.cand / p.bytes <= p.typical) THEN
      UPDATE mnemo.reports SET status = 'fixed', fixed_by = p_ckpt, fixed_bits = p.cand
       WHERE coalesce(group_id, id) = p.report AND status = 'accepted';
      GET DIAGNOSTICS k = ROW_COUNT;
      IF k > 0 THEN
        PERFORM mnemo.log_event('report_fixed', p_ckpt, NULL,
                                jsonb_build_object('report', p.report, 'reports', k,
                                                   'baseline_bits', p.base, 'bits', p.cand));
      END IF;
      n := n + k;
    END IF;
  END LOOP;
  RETURN n;
END
$$;

-- a rollback undoes the fixes of the checkpoint it retires: those reports are open again
CREATE FUNCTION mnemo.reports_unfix() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE mnemo.reports SET status = 'accepted', fixed_by = NULL, fixed_bits = NULL,
         notes = 'fix undone: checkpoint ' || NEW.previous_id || ' was rolled back'
   WHERE fixed_by = NEW.previous_id;
  RETURN NULL;
END
$$;
CREATE TRIGGER promotions_unfix AFTER INSERT ON mnemo.promotions
  FOR EACH ROW WHEN (NEW.kind = 'rollback') EXECUTE FUNCTION mnemo.reports_unfix();

-- report_boosts -- each language's replay sampling factor from its accepted open groups:
-- 1 + p_per * sum of 0.5^(hours since accepted / p_half_life_h), at most p_max
CREATE FUNCTION mnemo.report_boosts(p_per double precision, p_half_life_h double precision,
                                    p_max double precision, p_at timestamptz DEFAULT now())
RETURNS TABLE (lang text, factor double precision, groups bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT probe_lang,
         least(p_max, 1 + p_per * sum(power(0.5, greatest(0, extract(epoch FROM p_at - decided_at))
                                                 / 3600 / p_half_life_h))),
         count(*)
    FROM mnemo.reports
   WHERE status = 'accepted' AND id = coalesce(group_id, id)
   GROUP BY probe_lang
   ORDER BY probe_lang
$$;

-- report_status -- what the person who reported sees
CREATE FUNCTION mnemo.report_status(p_id bigint) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE status
           WHEN 'new' THEN 'received'
           WHEN 'triaged' THEN 'under review'
           WHEN 'accepted' THEN 'accepted: the next model update will be checked against it'
           WHEN 'fixed' THEN 'fixed in model ' || fixed_by
           ELSE 'rejected: ' || notes
         END
    FROM mnemo.reports WHERE id = p_id
$$;

-- per language: reports by status and the severity still open (triaged or accepted)
CREATE VIEW mnemo.report_summary AS
  SELECT claimed_lang AS lang,
         count(*) FILTER (WHERE status = 'new') AS new,
         count(*) FILTER (WHERE status = 'triaged') AS triaged,
         count(*) FILTER (WHERE status = 'accepted') AS accepted,
         count(*) FILTER (WHERE status = 'fixed') AS fixed,
         count(*) FILTER (WHERE status = 'rejected') AS rejected,
         coalesce(sum(severity) FILTER (WHERE status IN ('triaged', 'accepted')), 0)
           AS open_severity
    FROM mnemo.reports GROUP BY claimed_lang;

-- ---------------------------------------------------------------- privileges

REVOKE EXECUTE ON FUNCTION
  mnemo.triage_record(bigint, text, double precision, bigint, bytea, jsonb, text),
  mnemo.report_group(bigint), mnemo.triage_accept(bigint, text, text),
  mnemo.triage_reject(bigint, text), mnemo.reports_fix(bigint, double precision),
  mnemo.reports_unfix(),
  mnemo.report_boosts(double precision, double precision, double precision, timestamptz),
  mnemo.report_status(bigint) FROM PUBLIC;

-- statuses change through the functions only (0003 granted bare UPDATEs before they existed)
REVOKE UPDATE (detected_lang, severity) ON mnemo.reports FROM mnemo_daemon;
REVOKE UPDATE (status, notes, detected_lang, severity) ON mnemo.reports FROM mnemo_operator;

GRANT SELECT ON mnemo.report_summary TO mnemo_daemon, mnemo_operator;
GRANT EXECUTE ON FUNCTION
  mnemo.triage_record(bigint, text, double precision, bigint, bytea, jsonb, text),
  mnemo.reports_fix(bigint, double precision) TO mnemo_daemon;
GRANT EXECUTE ON FUNCTION mnemo.triage_accept(bigint, text, text),
  mnemo.triage_reject(bigint, text) TO mnemo_operator;
GRANT EXECUTE ON FUNCTION
  mnemo.report_boosts(double precision, double precision, double precision, timestamptz)
  TO mnemo_daemon, mnemo_operator;
GRANT EXECUTE ON FUNCTION mnemo.report_status(bigint)
  TO mnemo_reporter, mnemo_operator, mnemo_daemon;
