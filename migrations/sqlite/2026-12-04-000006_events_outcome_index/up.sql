-- The status page lists the newest events of one outcome: read backwards on this index, a rare
-- outcome is found without scanning the table. New rows land at the end of their outcome's range,
-- so each insert touches one of a few hot pages.
CREATE INDEX smartcar_webhook_events_outcome_idx ON smartcar_webhook_events (outcome, id);
