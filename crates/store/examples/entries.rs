//! Reads a meterhook database from another Rust program: an app vehicle's meter entries, oldest
//! reading first, void ones marked.
//!
//! `cargo run -p meterhook-store --example entries -- sqlite://meterhook.db car-1`

use meterhook_store::{PoolOptions, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(vehicle_id)) = (args.next(), args.next()) else {
        return Err("usage: entries DATABASE_URL APP_VEHICLE_ID".into());
    };
    // Never creates or migrates anything: a mistyped path is an error, not a new database.
    let store = Store::open_existing(&url, &PoolOptions::default())?;
    for entry in store.list_entries(&vehicle_id, true)? {
        println!(
            "{}  {:>12.3} km{}",
            entry.entry_date,
            entry.distance().km(),
            entry
                .void_reason
                .as_deref()
                .map(|r| format!("  void: {r}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
