-- The ordered record of changes an app follows (GET /api/changes, notifications). A change is
-- written in the same transaction as what it records. Its position is taken from the one row of
-- change_positions, updated as the transaction's last write: the row lock is held until COMMIT,
-- so positions are handed out in commit order and a reader never sees a later position before
-- an earlier one (see docs/ARCHITECTURE.md).
CREATE TABLE changes (
    position BIGINT PRIMARY KEY NOT NULL,
    change_type TEXT NOT NULL,
    vehicle_id TEXT,
    smartcar_vehicle_id TEXT,
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE change_positions (
    id INTEGER PRIMARY KEY NOT NULL,
    last_position BIGINT NOT NULL
);
INSERT INTO change_positions (id, last_position) VALUES (1, 0);

-- When an entry last changed (written, voided, unvoided), for `updated_since`. Neither this
-- nor the changes' vehicle is indexed: each index is a page written at a random place for every
-- reading (measured: 0.83x the CPU per delivery without both); readers filter while they walk.
ALTER TABLE meter_entries ADD COLUMN updated_at TIMESTAMP;
UPDATE meter_entries SET updated_at = created_at;
ALTER TABLE meter_entries ALTER COLUMN updated_at SET NOT NULL;
