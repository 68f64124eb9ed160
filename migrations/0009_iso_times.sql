-- 0009: one form of a time in what mnemo writes for scripts -- ISO 8601 in UTC to the
-- second, "2026-12-04T18:54:13Z" (docs/json.md).  mnemoctl's JSON that SQL builds (a
-- checkpoint's card, its approvals and promotions) writes its times with it; typed columns
-- are converted by mnemoctl the same way.

CREATE FUNCTION mnemo.iso(t timestamptz) RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;
