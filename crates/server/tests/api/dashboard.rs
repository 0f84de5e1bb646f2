//! `deploy/grafana/meterhook.json` queries only metrics that the real binary's `/metrics` has.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::helpers::*;

/// Every `meterhook_…` name in the dashboard's strings (queries, variables).
fn dashboard_metrics() -> BTreeSet<String> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/meterhook.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    let mut stack = vec![&json];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) => names.extend(metric_names(s)),
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    names
}

fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("meterhook_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

/// The sample names `/metrics` can carry: each family's samples by its type (a family without
/// samples yet, such as a labelled counter nothing has counted, still has its TYPE line).
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            if let Some(name) = line.split(['{', ' ']).next().filter(|n| !n.is_empty()) {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_metric_the_dashboard_queries_is_served() {
    let queried = dashboard_metrics();
    for wanted in [
        "meterhook_events_received_total",
        "meterhook_ingest_duration_seconds_bucket",
        "meterhook_backlog_unprocessed",
        "meterhook_backlog_spooled",
        "meterhook_vehicles_needing_reconnection",
        "meterhook_signature_failures_total",
    ] {
        assert!(
            queried.contains(wanted),
            "the dashboard has no panel on {wanted}"
        );
    }

    let mut server = BinaryServer::start(&[("SMARTCAR_MANAGEMENT_TOKEN", TOKEN)]);
    // One delivery, so that the labelled families have samples as well as TYPE lines.
    let body = odometer_event("dash-1", "sc-dash", 1.0, "km", 1_767_000_000_000);
    let sig = meterhook_smartcar::sign(TOKEN.as_bytes(), body.as_bytes());
    let answer = agent()
        .post(server.url("/api/smartcar/webhook"))
        .header("SC-Signature", &sig)
        .send(body.as_bytes())
        .expect("sent");
    assert_eq!(answer.status().as_u16(), 200);
    let mut metrics = agent().get(server.url("/metrics")).call().expect("metrics");
    let text = metrics.body_mut().read_to_string().expect("text");
    server.stop();
    let served = exposed(&text);
    assert!(served.contains("meterhook_events_received_total"), "{text}");
    let missing: Vec<&String> = queried.iter().filter(|m| !served.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not have: {missing:?}\n{text}"
    );
    // The check can fail.
    assert!(!served.contains("meterhook_no_such_metric"));
}
