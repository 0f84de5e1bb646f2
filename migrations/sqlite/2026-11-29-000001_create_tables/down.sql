DROP TABLE meter_entries;
DROP TABLE smartcar_sync_logs;
DROP TABLE smartcar_webhook_events;
DROP TABLE smartcar_vehicles;
