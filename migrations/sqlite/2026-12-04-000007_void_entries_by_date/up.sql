-- A vehicle's entries by date were indexed twice: all of them (meter_entries_vehicle_date_idx)
-- and the active ones (meter_entries_active_date_idx, which the rules read). Every accepted
-- reading wrote a page of both. Now the void entries have an index of their own and the listings
-- that include them read both indexes and merge: an accepted reading writes one index page less,
-- a refused one the same number.
CREATE INDEX meter_entries_void_date_idx ON meter_entries (vehicle_id, entry_date) WHERE void = TRUE;
DROP INDEX meter_entries_vehicle_date_idx;
