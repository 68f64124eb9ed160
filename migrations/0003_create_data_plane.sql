-- 0003: the data plane -- languages, sources, documents, user reports.
--
-- Documents are stored once (sha256 of their UTF-8 bytes is unique); their
-- split (train or heldout) is decided at ingest from the hash and never
-- changes, so held-out text is never trained on.  New documents and reports
-- wake the daemon through NOTIFY, once per statement.

-- ---------------------------------------------------------------- languages

-- Token ids 0-255 are bytes, 256 is <|eot|>, language tags start at 257.
-- A tag id is assigned once from this sequence and never reused or changed.
CREATE SEQUENCE mnemo.language_tag_seq AS integer START 257 MINVALUE 257 NO CYCLE;

CREATE TABLE mnemo.languages (
  code       text PRIMARY KEY REFERENCES mnemo.iso639_3 (code),
  name       text NOT NULL CHECK (name <> ''),
  script     text NOT NULL REFERENCES mnemo.iso15924 (code),
  enabled    boolean NOT NULL DEFAULT true,
  tag_id     integer NOT NULL UNIQUE DEFAULT nextval('mnemo.language_tag_seq')
               CHECK (tag_id >= 257),
  overrides  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(overrides) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE mnemo.language_tag_seq OWNED BY mnemo.languages.tag_id;
COMMENT ON COLUMN mnemo.languages.tag_id IS
  'token id of <|lang:code|>; assigned once, never reused, never changed';
COMMENT ON COLUMN mnemo.languages.overrides IS
  'per-language settings that override the global ones (tolerance, ...)';

CREATE FUNCTION mnemo.languages_keep_identity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'cannot delete language "%": disable it instead', OLD.code
      USING ERRCODE = 'restrict_violation',
            HINT = 'its tag id must never be reused';
  END IF;
  IF NEW.code <> OLD.code OR NEW.tag_id <> OLD.tag_id THEN
    RAISE EXCEPTION 'cannot change the code or tag id of language "%"', OLD.code
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER languages_keep_identity BEFORE UPDATE OR DELETE ON mnemo.languages
  FOR EACH ROW EXECUTE FUNCTION mnemo.languages_keep_identity();

-- ---------------------------------------------------------------- sources

CREATE TABLE mnemo.sources (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       text NOT NULL UNIQUE CHECK (name <> ''),
  origin     text NOT NULL DEFAULT '',
  licence    text NOT NULL DEFAULT '',
  notes      text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mnemo.sources IS 'provenance: where documents came from, under which licence';

-- ---------------------------------------------------------------- documents

CREATE TABLE mnemo.documents (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  lang        text NOT NULL REFERENCES mnemo.languages (code),
  source_id   bigint NOT NULL REFERENCES mnemo.sources (id),
  text        text NOT NULL CHECK (text <> ''),
  bytes       integer NOT NULL CHECK (bytes = octet_length(text)),
  sha256      bytea NOT NULL UNIQUE CHECK (sha256 = sha256(convert_to(text, 'UTF8'))),
  split       text NOT NULL CHECK (split IN ('train', 'heldout')),
  ingested_at timestamptz NOT NULL DEFAULT now(),
  consumed_by bigint -- the checkpoint that first absorbed it (a foreign key once checkpoints exist)
);
CREATE INDEX documents_lang_split ON mnemo.documents (lang, split) INCLUDE (bytes);
COMMENT ON COLUMN mnemo.documents.split IS
  'heldout when the first 8 bytes of sha256, as a fraction of 2^64, fall below the '
  'configured held-out fraction at ingest; never changes afterwards';

-- ---------------------------------------------------------------- reports

CREATE TABLE mnemo.reports (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  claimed_lang   text NOT NULL REFERENCES mnemo.languages (code),
  text           text NOT NULL CHECK (text <> '' AND octet_length(text) <= 65536),
  expected_text  text CHECK (expected_text <> '' AND octet_length(expected_text) <= 65536),
  context        jsonb NOT NULL DEFAULT '{}'
                   CHECK (jsonb_typeof(context) = 'object' AND pg_column_size(context) <= 65536),
  reporter       text NOT NULL DEFAULT session_user,
  status         text NOT NULL DEFAULT 'new'
                   CHECK (status IN ('new', 'triaged', 'accepted', 'rejected', 'fixed')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  detected_lang  text REFERENCES mnemo.iso639_3 (code),
  severity       double precision,
  notes          text NOT NULL DEFAULT ''
);
CREATE INDEX reports_open ON mnemo.reports (status, claimed_lang);
COMMENT ON TABLE mnemo.reports IS
  'what users saw go wrong in their language; inserted by other systems (role mnemo_reporter) '
  'or mnemoctl report';

-- ---------------------------------------------------------------- notifications

-- One NOTIFY per statement (not per row): a 100,000-row ingest wakes the daemon once.
-- No transition table: it would copy every inserted row (text included) just to count
-- them, and the daemon reads what is new with a query anyway.  A statement that inserts
-- nothing (every document a duplicate) still notifies: a harmless wake-up.
CREATE FUNCTION mnemo.notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME);
  RETURN NULL;
END
$$;
CREATE TRIGGER documents_notify AFTER INSERT ON mnemo.documents
  FOR EACH STATEMENT EXECUTE FUNCTION mnemo.notify_inserted('mnemo_documents');
CREATE TRIGGER reports_notify AFTER INSERT ON mnemo.reports
  FOR EACH STATEMENT EXECUTE FUNCTION mnemo.notify_inserted('mnemo_reports');

-- ---------------------------------------------------------------- privileges

-- Column lists on INSERT too: a writer cannot choose ids, times, tag ids, statuses, or
-- mark documents consumed.  (A column list binds only the privilege it follows.)

-- mnemo_ingest: add documents (and their sources); read what it must check against.
GRANT SELECT ON mnemo.languages TO mnemo_ingest;
GRANT SELECT, INSERT (name) ON mnemo.sources TO mnemo_ingest;
GRANT INSERT (lang, source_id, text, bytes, sha256, split) ON mnemo.documents TO mnemo_ingest;
-- ON CONFLICT (sha256) and RETURNING read these; never the text
GRANT SELECT (id, lang, bytes, split, sha256) ON mnemo.documents TO mnemo_ingest;

-- mnemo_reporter: insert reports, nothing else (not even read them back).
GRANT SELECT (code, enabled) ON mnemo.languages TO mnemo_reporter;
GRANT INSERT (claimed_lang, text, expected_text, context) ON mnemo.reports TO mnemo_reporter;
GRANT SELECT (id) ON mnemo.reports TO mnemo_reporter; -- INSERT ... RETURNING id

-- mnemo_daemon: read everything, mark documents consumed, annotate reports (its findings,
-- not their status: accepting a report is an operator's decision).
GRANT SELECT ON mnemo.languages, mnemo.sources, mnemo.documents, mnemo.reports TO mnemo_daemon;
GRANT UPDATE (consumed_by) ON mnemo.documents TO mnemo_daemon;
GRANT UPDATE (detected_lang, severity) ON mnemo.reports TO mnemo_daemon;

-- mnemo_operator: read everything, manage languages and sources, triage reports.
GRANT SELECT ON mnemo.languages, mnemo.sources, mnemo.documents, mnemo.reports TO mnemo_operator;
GRANT INSERT (code, name, script, enabled, overrides),
      UPDATE (name, script, enabled, overrides) ON mnemo.languages TO mnemo_operator;
GRANT USAGE ON SEQUENCE mnemo.language_tag_seq TO mnemo_operator;
GRANT INSERT (name, origin, licence, notes), UPDATE (origin, licence, notes)
  ON mnemo.sources TO mnemo_operator;
GRANT UPDATE (status, notes, detected_lang, severity) ON mnemo.reports TO mnemo_operator;
