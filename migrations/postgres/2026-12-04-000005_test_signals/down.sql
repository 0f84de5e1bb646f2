ALTER TABLE vehicle_signals DROP COLUMN test;
