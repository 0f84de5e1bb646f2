//! `docs/openapi.yaml` against the running server: every documented route exists and answers
//! with the documented statuses and shapes.

use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;
use serde_json::Value;

use crate::helpers::*;

const API_TOKEN: &str = "api-token-0123456789";

fn spec() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("docs/openapi.yaml");
    serde_norway::from_str(&text).expect("docs/openapi.yaml is YAML")
}

/// `value`, or what its `$ref` names (`#/components/…`), followed until it is not a reference.
fn resolve<'a>(spec: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference.strip_prefix('#').expect("a local $ref");
        value = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{reference} does not exist"));
    }
    value
}

/// Checks `value` against an OpenAPI 3.0 schema: types, nullable, required properties, items,
/// allOf, enum, and no properties beyond those declared.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(spec, schema);
    if value.is_null() {
        assert!(
            schema["nullable"] == true,
            "{at}: null, but the schema is not nullable"
        );
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(spec, s, value, at);
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        assert!(
            options.contains(value),
            "{at}: {value} is not one of {options:?}"
        );
    }
    let Some(kind) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    let fits = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        other => panic!("{at}: schema type {other} not handled"),
    };
    assert!(fits, "{at}: {value} is not a {kind}");
    if let Some(items) = schema.get("items") {
        for (i, item) in value.as_array().expect("array").iter().enumerate() {
            check(spec, items, item, &format!("{at}[{i}]"));
        }
    }
    if kind == "object" {
        let object = value.as_object().expect("object");
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().expect("name");
            assert!(object.contains_key(name), "{at}: no {name} in {value}");
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, v) in object {
                match properties.get(name) {
                    Some(s) => check(spec, s, v, &format!("{at}.{name}")),
                    None => assert!(
                        schema["additionalProperties"] == true,
                        "{at}: {name} is not documented"
                    ),
                }
            }
        }
    }
}

fn request(app: &TestApp, method: &str, path: &str, body: Option<&Value>, token: bool) -> Answer {
    let url = format!("{}{path}", app.address);
    let agent = agent();
    let auth = format!("Bearer {API_TOKEN}");
    let response = match method {
        "delete" => {
            let mut r = agent.delete(&url);
            if token {
                r = r.header("Authorization", &auth);
            }
            r.call()
        }
        "get" => {
            let mut r = agent.get(&url);
            if token {
                r = r.header("Authorization", &auth);
            }
            r.call()
        }
        "put" | "post" => {
            let mut r = if method == "put" {
                agent.put(&url)
            } else {
                agent.post(&url)
            }
            .content_type("application/json");
            if token {
                r = r.header("Authorization", &auth);
            }
            r.send(body.map(Value::to_string).unwrap_or_default())
        }
        other => panic!("method {other} not handled"),
    };
    answer(response.expect("sent"))
}

/// The documented answer `status` of `operation`, checked against `answer`.
fn check_answer(spec: &Value, operation: &Value, status: u16, answer: &Answer, at: &str) {
    assert_eq!(answer.status, status, "{at}: {}", answer.body);
    let documented = operation["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{at}: answered {status}, which is not documented"));
    let documented = resolve(spec, documented);
    if let Some(headers) = documented.get("headers").and_then(Value::as_object) {
        for name in headers.keys() {
            assert!(answer.header(name).is_some(), "{at}: no {name} header");
        }
    }
    let schema = &documented["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{at}: {status} documents no JSON body");
    check(spec, schema, &answer.json(), &format!("{at} {status}"));
}

#[test]
fn every_documented_route_answers_as_documented() {
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 7, "{:?}", paths.keys());
    for db in TestDatabase::all() {
        let app = spawn_app_with(db, PoolOptions::default(), |s| {
            s.api_token = Some(meterhook::Secret::new(API_TOKEN));
        });
        app.store
            .register_vehicle("sc-1", "car-1")
            .expect("register");
        let t0 = 1_767_000_000_000;
        for (i, km) in [10.0, 20.0, 30.0].into_iter().enumerate() {
            let at = t0 + i64::try_from(i).expect("small") * 3_600_000;
            let event = odometer_event(&format!("o{i}"), "sc-1", km, "km", at);
            assert_eq!(app.post_signed(event.as_bytes()).status, 200);
        }
        // Paging follows next_after to the end (before the vehicle is erased below).
        let first = request(
            &app,
            "get",
            "/api/vehicles/car-1/meter-entries?limit=2",
            None,
            true,
        );
        let cursor = first.json()["next_after"]
            .as_str()
            .expect("cursor")
            .to_owned();
        let rest = request(
            &app,
            "get",
            &format!("/api/vehicles/car-1/meter-entries?limit=2&after={cursor}"),
            None,
            true,
        );
        assert_eq!(rest.json()["entries"].as_array().map(Vec::len), Some(1));
        // Deletions last: they erase the vehicle the other routes read.
        let mut operations: Vec<(&String, &String, &Value)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .iter()
                    .map(move |(method, operation)| (path, method, operation))
            })
            .collect();
        operations.sort_by_key(|(_, method, _)| method.as_str() == "delete");
        for (path, method, operation) in operations {
            {
                // A deletion says so in its query (`purge=true`, the documented example).
                let confirm = if method == "delete" {
                    "?purge=true"
                } else {
                    ""
                };
                let at = format!("{} {path}", method.to_uppercase());
                let concrete = |vehicle: &str, smartcar: &str| {
                    let path = path
                        .replace("{vehicle_id}", vehicle)
                        .replace("{smartcar_vehicle_id}", smartcar);
                    format!("{path}{confirm}")
                };
                let body = operation
                    .pointer("/requestBody/content/application~1json/example")
                    .cloned()
                    .map(|mut example| {
                        // The example registers the test's vehicle to its own app vehicle.
                        example["vehicle_id"] = "car-1".into();
                        example
                    });
                let good = concrete("car-1", "sc-1");

                let answer = request(&app, method, &good, body.as_ref(), false);
                check_answer(&spec, operation, 401, &answer, &at);

                let answer = request(&app, method, &good, body.as_ref(), true);
                check_answer(&spec, operation, 200, &answer, &at);

                if operation["responses"].get("404").is_some() {
                    let answer = request(
                        &app,
                        method,
                        &concrete("nobody", "nobody"),
                        body.as_ref(),
                        true,
                    );
                    check_answer(&spec, operation, 404, &answer, &at);
                }
                if operation["responses"].get("400").is_some() {
                    let bad = if body.is_some() {
                        request(&app, method, &good, Some(&serde_json::json!({})), true)
                    } else {
                        let sep = if good.contains('?') { '&' } else { '?' };
                        request(&app, method, &format!("{good}{sep}limit=0"), None, true)
                    };
                    check_answer(&spec, operation, 400, &bad, &at);
                }
            }
        }
    }
}

#[test]
fn without_a_token_setting_every_documented_route_is_not_found() {
    let spec = spec();
    let app = spawn_app();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let path = path
                .replace("{vehicle_id}", "car-1")
                .replace("{smartcar_vehicle_id}", "sc-1");
            let answer = request(&app, method, &path, Some(&serde_json::json!({})), true);
            assert_eq!(answer.status, 404, "{method} {path}");
            assert_eq!(answer.json()["error"], "not found");
        }
    }
}
