DROP INDEX meter_entries_updated_idx;
ALTER TABLE meter_entries DROP COLUMN updated_at;
DROP TABLE change_positions;
DROP TABLE changes;
