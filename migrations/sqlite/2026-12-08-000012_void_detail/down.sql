ALTER TABLE meter_entries DROP COLUMN void_detail;
