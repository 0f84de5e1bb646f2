-- Signal values sent by a test delivery (the dashboard's `meta.mode: TEST`) are kept, marked, and
-- never stand as a vehicle's latest value. Rows written before this migration came from live and
-- test deliveries alike; they count as live. The default only fills those rows: meterhook writes
-- the column on every insert.
ALTER TABLE vehicle_signals ADD COLUMN test BOOLEAN NOT NULL DEFAULT FALSE;

-- Conditions only the vehicle's owner can fix (reconnect the car, renew the connected-services
-- account, grant permissions again): meterhook-smartcar decides which, and the vehicle is marked
-- as needing reconnection until a successful state arrives or they are resolved.
ALTER TABLE vehicle_errors ADD COLUMN needs_owner BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE smartcar_vehicles ADD COLUMN needs_reconnection BOOLEAN NOT NULL DEFAULT FALSE;

-- Self-healing: a refused reading remembers the active entry that refused it, so that enough of
-- them agreeing can supersede that entry. Only refused readings are in the index.
ALTER TABLE meter_entries ADD COLUMN refused_by BIGINT;
CREATE INDEX meter_entries_refused_by_idx ON meter_entries (refused_by) WHERE refused_by IS NOT NULL;
