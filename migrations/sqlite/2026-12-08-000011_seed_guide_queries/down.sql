ALTER TABLE smartcar_webhook_events DROP COLUMN created_at;
