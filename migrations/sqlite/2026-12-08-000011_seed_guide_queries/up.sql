-- The seed's guide reads `created_at` of the events (its troubleshooting and monitoring
-- queries); meterhook calls it `received_at`. A virtual column computed from it costs nothing
-- to store and nothing on the write path. SQLite reads `data ->> 'meterEntryId'` on the sync
-- logs' JSON text already.
ALTER TABLE smartcar_webhook_events ADD COLUMN created_at TIMESTAMP GENERATED ALWAYS AS (received_at) VIRTUAL;
