-- Why a void entry is void, for programs: the rule, the figures it compared (JSON text); the
-- sentence for people stays in void_reason. NULL for active entries and for entries voided
-- before this migration.
ALTER TABLE meter_entries ADD COLUMN void_detail TEXT;
