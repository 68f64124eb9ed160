-- 0008: what the console and /metrics read -- each checkpoint's numbers per language and
-- each language's history across promotions (docs/console.md).
--
-- A checkpoint's bits per byte of a language are what its guard verdict measured: its own
-- candidate numbers when it was judged, else (a bootstrapped production checkpoint) the
-- baseline numbers of its first judged child.  Each verdict measured on the evaluation set
-- of its day: the history is "as judged", not one fixed yardstick.  Views, so that
-- operators and the daemon read them without reading the verdicts' whole JSON.

CREATE VIEW mnemo.checkpoint_numbers AS
  WITH parity AS (
    SELECT c.id AS ckpt_id, x->>'lang' AS lang,
           (x->>'candidate_bits_per_char')::double precision AS cand,
           (x->>'baseline_bits_per_char')::double precision AS base
      FROM mnemo.checkpoints c,
           jsonb_array_elements(CASE jsonb_typeof(c.verdict->'parity'->'languages')
                                  WHEN 'array' THEN c.verdict->'parity'->'languages'
                                  ELSE '[]'::jsonb END) x),
  own AS (
    SELECT v.ckpt_id, v.lang, v.candidate_bpb AS bpb, p.cand AS bits_per_char
      FROM mnemo.verdicts v
      LEFT JOIN parity p ON p.ckpt_id = v.ckpt_id AND p.lang = v.lang
     WHERE v.candidate_bpb IS NOT NULL),
  inherited AS (
    SELECT DISTINCT ON (c.parent_id, v.lang) c.parent_id AS ckpt_id, v.lang,
           v.baseline_bpb AS bpb, p.base AS bits_per_char
      FROM mnemo.checkpoints c
      JOIN mnemo.verdicts v ON v.ckpt_id = c.id
      LEFT JOIN parity p ON p.ckpt_id = c.id AND p.lang = v.lang
     WHERE c.parent_id IS NOT NULL AND v.baseline_bpb IS NOT NULL
     ORDER BY c.parent_id, v.lang, c.id)
  SELECT ckpt_id, lang, bpb, bits_per_char FROM own
  UNION ALL
  SELECT i.ckpt_id, i.lang, i.bpb, i.bits_per_char FROM inherited i
   WHERE NOT EXISTS (SELECT 1 FROM own o WHERE o.ckpt_id = i.ckpt_id AND o.lang = i.lang);
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
