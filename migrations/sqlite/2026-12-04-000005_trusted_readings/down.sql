DROP INDEX meter_entries_refused_by_idx;
ALTER TABLE meter_entries DROP COLUMN refused_by;
ALTER TABLE smartcar_vehicles DROP COLUMN needs_reconnection;
ALTER TABLE vehicle_errors DROP COLUMN needs_owner;
ALTER TABLE vehicle_signals DROP COLUMN test;
