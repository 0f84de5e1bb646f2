//! Diesel table definitions, kept by hand in step with `migrations/`.
#![allow(missing_docs)]

diesel::table! {
    smartcar_vehicles (id) {
        id -> BigInt,
        smartcar_vehicle_id -> Text,
        vehicle_id -> Text,
        is_active -> Bool,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    smartcar_webhook_events (id) {
        id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        smartcar_vehicle_id -> Nullable<Text>,
        payload -> Text,
        received_at -> Timestamp,
        processed -> Bool,
        processed_at -> Nullable<Timestamp>,
        outcome -> Text,
        error -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    smartcar_sync_logs (id) {
        id -> BigInt,
        sync_type -> Text,
        smartcar_vehicle_id -> Nullable<Text>,
        vehicle_id -> Nullable<Text>,
        event_id -> Nullable<Text>,
        status -> Text,
        outcome -> Text,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    meter_entries (id) {
        id -> BigInt,
        vehicle_id -> Text,
        value_m -> BigInt,
        entry_date -> Timestamp,
        source_type -> Text,
        notes -> Nullable<Text>,
        event_id -> Nullable<Text>,
        void -> Bool,
        void_reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    smartcar_vehicles,
    smartcar_webhook_events,
    smartcar_sync_logs,
    meter_entries,
);
