//! Judges odometer readings of one vehicle, in the order given, with the default policy:
//! `cargo run -p meterhook-domain --example judge -- 100km@0h 100km@0.5h 60mi@2h 90km@3h`.

use meterhook_domain::{judge, Candidate, Distance, DistanceUnit, Millis, Policy, Reading, Stored};

fn parse(arg: &str) -> Result<Reading, String> {
    let (value, hours) = arg
        .split_once('@')
        .ok_or_else(|| format!("{arg:?}: expected VALUE UNIT@HOURS, e.g. 100km@1.5h"))?;
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("{arg:?}: no unit"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{arg:?}: not a number"))?;
    let unit: DistanceUnit = unit.parse().map_err(|e| format!("{arg:?}: {e}"))?;
    let hours: f64 = hours
        .trim_end_matches('h')
        .parse()
        .map_err(|_| format!("{arg:?}: bad hours"))?;
    let distance = Distance::from_value(number, unit).map_err(|e| format!("{arg:?}: {e}"))?;
    Ok(Reading::new(
        distance,
        Millis((hours * Millis::HOUR as f64) as i64),
    ))
}

fn main() -> Result<(), String> {
    let readings = std::env::args()
        .skip(1)
        .map(|a| parse(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let batch: Vec<Candidate<&str>> = readings
        .iter()
        .map(|&reading| Candidate {
            vehicle: "car",
            reading,
            stored: Stored::default(),
        })
        .collect();
    for (reading, judgement) in readings.iter().zip(judge(&batch, &Policy::default())) {
        println!("{reading}: {}", judgement.decision);
    }
    Ok(())
}
