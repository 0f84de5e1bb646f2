-- The rules' point lookups on a vehicle's active entries: the nearest one on either side of a
-- time, and those of one value near a time. Partial, so void entries cost these indexes nothing.
CREATE INDEX meter_entries_active_date_idx ON meter_entries (vehicle_id, entry_date, value_m)
    WHERE void = FALSE;
CREATE INDEX meter_entries_active_value_idx ON meter_entries (vehicle_id, value_m, entry_date)
    WHERE void = FALSE;
