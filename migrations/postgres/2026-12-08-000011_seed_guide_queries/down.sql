DROP OPERATOR ->> (TEXT, TEXT);
DROP FUNCTION meterhook_json_text_field(TEXT, TEXT);
ALTER TABLE smartcar_webhook_events DROP COLUMN created_at;
