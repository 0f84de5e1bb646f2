//! meterhook-ingest embedded without an HTTP framework: each line of standard input is a webhook
//! body (already verified, as a queue consumer would receive it); each is committed and its
//! outcome printed.
//!
//! ```sh
//! echo '{"eventId":"e-1","eventType":"VEHICLE_STATE","vehicleId":"sc-1","data":{"odometer":{"distance":12345,"unit":"km"}}}' \
//!   | cargo run -p meterhook-ingest --example embed -- /tmp/embed.db sc-1 car-1
//! ```

use std::io::BufRead;
use std::time::Duration;

use meterhook_domain::Policy;
use meterhook_ingest::{classify, Ingest, IngestOptions, RetryPolicy};
use meterhook_store::{PoolOptions, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(smartcar_id), Some(vehicle_id)) = (args.next(), args.next(), args.next())
    else {
        return Err("usage: embed DATABASE_FILE SMARTCAR_VEHICLE_ID APP_VEHICLE_ID".into());
    };
    let store = Store::open(&format!("sqlite://{path}"), &PoolOptions::default())?;
    store.register_vehicle(&smartcar_id, &vehicle_id)?;
    let options = IngestOptions::new(&store, Policy::default(), RetryPolicy::default());
    let ingest = Ingest::start(options, store.clone(), None)?;
    let intake = *ingest.submitter().intake();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let event = match meterhook_smartcar::parse_event(line.as_bytes()) {
                Ok(event) => event,
                Err(e) => {
                    println!("not an event: {e}");
                    continue;
                }
            };
            let received = meterhook_store::now();
            for delivery in classify::received(&event, line.as_bytes(), received, &intake) {
                let id = delivery.event_id.clone();
                println!("{id}: {:?}", ingest.submit(delivery).await?);
            }
        }
        ingest.shutdown(Duration::from_secs(5)).await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    for entry in store.list_entries(&vehicle_id, true)? {
        println!(
            "{vehicle_id}: {:.3} km at {}{}",
            entry.distance().km(),
            entry.entry_date,
            if entry.void { " (void)" } else { "" }
        );
    }
    Ok(())
}
