DROP TABLE vehicle_errors;
DROP TABLE vehicle_signals;
