-- Void entries were indexed by their event, keyed by a random event id: every refused reading
-- wrote a page of that index at a random place, one more than an accepted reading writes. Its only
-- reader is `events reprocess`, which deletes the void entries of the events it sends back; it now
-- does that with one statement per 10,000 events that reads the void entries once, so a rare
-- admin command pays instead of every refused reading.
DROP INDEX meter_entries_void_event_idx;
