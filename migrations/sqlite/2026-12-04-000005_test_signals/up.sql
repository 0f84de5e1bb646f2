-- Signal values sent by a test delivery (the dashboard's `meta.mode: TEST`) are kept, marked, and
-- never stand as a vehicle's latest value. Rows written before this migration came from live and
-- test deliveries alike; they count as live. The default only fills those rows: meterhook writes
-- the column on every insert.
ALTER TABLE vehicle_signals ADD COLUMN test BOOLEAN NOT NULL DEFAULT FALSE;
