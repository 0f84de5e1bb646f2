//! `parse_event` on arbitrary bytes: it must return `Ok` or `Err`, never panic, whatever a
//! (signed) sender puts in the body. When it parses, every accessor the server and the processor
//! use is exercised too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterhook_domain::Millis;
use meterhook_smartcar::{normalize_unit, parse_event, EventId, SignalKind};

fuzz_target!(|data: &[u8]| {
    let Ok(event) = parse_event(data) else {
        // The server keeps an unparseable signed body under its body hash.
        let id = EventId::from_body(data);
        assert!(id.from_body_hash && id.value.starts_with("sha256:"));
        return;
    };
    if event.id.from_body_hash {
        assert_eq!(event.id, EventId::from_body(data));
    }
    let _ = event.event_type.as_str();
    // The receive time, and the extremes of the Millis range.
    for received in [Millis(1_735_689_600_000), Millis(0), Millis(i64::MIN), Millis(i64::MAX)] {
        if let Some(reading) = event.odometer_reading(received) {
            match reading {
                Ok(r) => {
                    let km = r.distance.km();
                    assert!(km.is_finite() && km >= 0.0, "{km}");
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
    let _ = event.is_test();
    let _ = event.odometer();
    let _ = event.signal(SignalKind::Location);
    for signal in &event.signals {
        let _ = signal.kind();
        let _ = signal.failed();
        let _ = signal.value();
        let _ = signal.bool_value();
        let _ = signal.text_value();
        let _ = signal.unit().map(normalize_unit);
        let _ = signal.normalized_unit();
        let _ = signal.location();
        let _ = signal.observed_at(Millis(0));
    }
    for error in &event.errors {
        let _ = error.is_resolved();
    }
    for trigger in &event.triggers {
        let _ = trigger.is_first_delivery();
    }
    let _ = format!("{event:?} {}", event.id);
});
