//! The deployment files under `deploy/`, read as systemd would (scripts/check-deploy.sh also
//! runs `systemd-analyze verify` and `promtool` where they are installed).

use std::collections::HashMap;
use std::path::PathBuf;

fn repo_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A unit file's sections: name → key → values (a key may repeat).
fn parse_unit(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut sections: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        let section = current
            .as_ref()
            .unwrap_or_else(|| panic!("line {}: a key outside any section", n + 1));
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=VALUE: {line}", n + 1));
        sections
            .get_mut(section)
            .expect("section")
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    sections
}

#[test]
fn the_systemd_unit_serves_and_does_not_restart_on_a_configuration_error() {
    let unit = parse_unit(&repo_file("deploy/meterhook.service"));
    let one = |section: &str, key: &str| -> String {
        let values = &unit[section]
            .get(key)
            .unwrap_or_else(|| panic!("[{section}] has no {key}"));
        assert_eq!(values.len(), 1, "[{section}] {key} set more than once");
        values[0].clone()
    };
    assert_eq!(
        one("Service", "ExecStart"),
        "/usr/local/bin/meterhook serve"
    );
    assert_eq!(one("Service", "Restart"), "on-failure");
    // The CLI's configuration exit code: restarting cannot fix a bad setting.
    let prevent = one("Service", "RestartPreventExitStatus");
    assert!(
        prevent
            .split_whitespace()
            .any(|code| code == meterhook::cli::CliError::CONFIG.to_string()),
        "{prevent}"
    );
    // Longer than the server's 30 s graceful shutdown, so systemd does not kill it mid-drain.
    let stop: u64 = one("Service", "TimeoutStopSec").parse().expect("seconds");
    assert!(stop > 30, "TimeoutStopSec={stop}");
    assert_eq!(one("Service", "WorkingDirectory"), "/var/lib/meterhook");
    assert_eq!(one("Install", "WantedBy"), "multi-user.target");
    // DEPLOYING.md tells what the unit does; it must name this file, not a diverging copy.
    let deploying = repo_file("docs/DEPLOYING.md");
    assert!(deploying.contains("deploy/meterhook.service"));
    assert!(
        !deploying.contains("\n[Service]\n"),
        "DEPLOYING.md has its own copy of the unit"
    );
}

#[test]
fn the_licence_files_match_the_declared_licence() {
    let manifest = repo_file("Cargo.toml");
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    assert!(repo_file("LICENSE-MIT").contains("Permission is hereby granted, free of charge"));
    assert!(repo_file("LICENSE-APACHE")
        .contains("Apache License\n                        Version 2.0, January 2004"));
}

#[test]
fn the_prune_timer_runs_the_prune_command_daily() {
    let service = parse_unit(&repo_file("deploy/meterhook-prune.service"));
    assert_eq!(
        service["Service"]["ExecStart"],
        ["/usr/local/bin/meterhook prune"]
    );
    assert_eq!(service["Service"]["Type"], ["oneshot"]);
    let timer = parse_unit(&repo_file("deploy/meterhook-prune.timer"));
    assert_eq!(timer["Timer"]["OnCalendar"], ["daily"]);
    assert_eq!(timer["Install"]["WantedBy"], ["timers.target"]);
}

/// Every metric an alert in deploy/alerts.yml reads is one the service exports: a renamed metric
/// would leave its alert silent for good.
#[test]
fn every_alert_reads_metrics_the_service_exports() {
    use crate::helpers::odometer_event;
    let app = crate::helpers::spawn_app();
    // A labelled family appears once it has a sample: one delivery, one refused signature.
    let body = odometer_event("e-1", "sc-1", 100.0, "km", 1_700_000_000_000);
    assert_eq!(app.post_signed(body.as_bytes()).status, 200);
    assert_eq!(app.post_raw(body.as_bytes(), Some("v1=00")).status, 401);
    let exported = app.get("/metrics").body;
    let rules: serde_norway::Value =
        serde_norway::from_str(&repo_file("deploy/alerts.yml")).expect("alerts.yml is YAML");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            alerts += 1;
            let names = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("meterhook_"));
            for name in names {
                // A family without samples yet still declares its type (without the suffixes).
                let family = ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                assert!(
                    exported.contains(&format!("# TYPE {family} ")),
                    "{} reads {name}, which /metrics does not export",
                    rule["alert"].as_str().unwrap_or("an alert")
                );
            }
        }
    }
    assert!(alerts > 0);
    assert!(repo_file("deploy/alerts.yml").contains("meterhook_invalid_signatures_total"));
}
