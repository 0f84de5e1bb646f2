-- The seed's guide reads `created_at` of the events (its troubleshooting and monitoring
-- queries); meterhook calls it `received_at`. PostgreSQL's generated columns are stored: 8 bytes
-- a row, computed as the row is written; this rewrites the events table once.
ALTER TABLE smartcar_webhook_events ADD COLUMN created_at TIMESTAMP GENERATED ALWAYS AS (received_at) STORED;

-- The guide reads `data->>'meterEntryId'` of the sync logs, which needs jsonb; meterhook keeps
-- the JSON as text (portable through Diesel's MultiConnection). This operator reads a field of
-- JSON held as text, so the guide's queries run as written; nothing on the write path uses it.
CREATE FUNCTION meterhook_json_text_field(data TEXT, field TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT data::jsonb ->> field $$;
CREATE OPERATOR ->> (LEFTARG = TEXT, RIGHTARG = TEXT, FUNCTION = meterhook_json_text_field);
