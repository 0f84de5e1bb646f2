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
        needs_reconnection -> Bool,
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
        refused_by -> Nullable<BigInt>,
        updated_at -> Timestamp,
        void_detail -> Nullable<Text>,
    }
}

diesel::table! {
    changes (position) {
        position -> BigInt,
        change_type -> Text,
        vehicle_id -> Nullable<Text>,
        smartcar_vehicle_id -> Nullable<Text>,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    change_positions (id) {
        id -> Integer,
        last_position -> BigInt,
    }
}

diesel::table! {
    vehicle_signals (id) {
        id -> BigInt,
        smartcar_vehicle_id -> Text,
        code -> Text,
        value -> Nullable<Double>,
        unit -> Nullable<Text>,
        raw -> Text,
        observed_at -> Timestamp,
        event_id -> Text,
        created_at -> Timestamp,
        test -> Bool,
    }
}

diesel::table! {
    vehicle_errors (id) {
        id -> BigInt,
        smartcar_vehicle_id -> Text,
        error_type -> Text,
        code -> Text,
        description -> Nullable<Text>,
        suggested_user_message -> Nullable<Text>,
        resolution_type -> Nullable<Text>,
        doc_url -> Nullable<Text>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        event_id -> Text,
        needs_owner -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    smartcar_vehicles,
    smartcar_webhook_events,
    smartcar_sync_logs,
    meter_entries,
    changes,
    vehicle_signals,
    vehicle_errors,
);
