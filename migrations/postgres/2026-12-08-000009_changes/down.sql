ALTER TABLE meter_entries DROP COLUMN updated_at;
DROP TABLE change_positions;
DROP TABLE changes;
