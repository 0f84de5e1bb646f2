//! The status pages under `/ui/`: off unless a password is set, never served without it, their
//! content on both backends, HTML escaping, and a basic accessibility check of each page.

use base64::Engine as _;
use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const PASSWORD: &str = "ui-password-0123456789";
const H: i64 = 3_600_000;

fn with_password(s: &mut meterhook::Settings) {
    s.ui_password = Some(meterhook::Secret::new(PASSWORD));
}

fn spawn_ui_apps() -> Vec<TestApp> {
    TestDatabase::all()
        .into_iter()
        .map(|db| spawn_app_with(db, PoolOptions::default(), with_password))
        .collect()
}

fn basic(user_and_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_and_password)
    )
}

/// GET `path` with an optional `Authorization` header.
fn get_with(app: &TestApp, path: &str, authorization: Option<&str>) -> Answer {
    let mut req = agent().get(format!("{}{path}", app.address));
    if let Some(value) = authorization {
        req = req.header("Authorization", value);
    }
    let mut response = req.call().expect("request sent");
    Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// GET `path` signed in; checks the page is HTML with the headers every page carries.
fn page(app: &TestApp, path: &str) -> Answer {
    let answer = get_with(app, path, Some(&basic(&format!("ops:{PASSWORD}"))));
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{path}: {:?}",
        answer.headers
    );
    assert_protected(path, &answer);
    answer
}

#[track_caller]
fn assert_protected(path: &str, answer: &Answer) {
    assert_eq!(answer.header("cache-control"), Some("no-store"), "{path}");
    let csp = answer.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("http"),
        "{path}: {csp}"
    );
}

/// The page passes a basic accessibility check: the document's language, one `<h1>`, a label for
/// every form control, and a role and a title for every chart.
#[track_caller]
fn assert_accessible(path: &str, body: &str) {
    assert!(body.starts_with("<!DOCTYPE html>"), "{path}");
    assert!(body.contains("<html lang=\"en\">"), "{path}");
    assert_eq!(body.matches("<h1").count(), 1, "{path}: one <h1>");
    assert!(body.contains("<title>"), "{path}: a document title");
    for control in ["<select", "<input", "<textarea"] {
        for tag in body.split(control).skip(1) {
            let tag = tag.split('>').next().unwrap_or("");
            let id = tag
                .split("id=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or_else(|| panic!("{path}: a {control} without an id: {tag}"));
            assert!(
                body.contains(&format!("<label for=\"{id}\"")),
                "{path}: no label for {id}"
            );
        }
    }
    for svg in body.split("<svg").skip(1) {
        let tag = svg.split('>').next().unwrap_or("");
        assert!(
            tag.contains("role=\"img\""),
            "{path}: svg without role: {tag}"
        );
        assert!(
            tag.contains("aria-labelledby="),
            "{path}: svg unnamed: {tag}"
        );
        let inner = svg.split("</svg>").next().unwrap_or("");
        assert!(inner.contains("<title"), "{path}: svg without <title>");
    }
    for img in body.split("<img").skip(1) {
        let tag = img.split('>').next().unwrap_or("");
        assert!(tag.contains("alt="), "{path}: img without alt");
    }
}

fn error_event(event_id: &str, vehicle: &str) -> String {
    serde_json::json!({
        "eventId": event_id,
        "eventType": "VEHICLE_ERROR",
        "data": {
            "vehicle": { "id": vehicle },
            "errors": [{
                "type": "CONNECTED_SERVICES_ACCOUNT",
                "code": "AUTHENTICATION_FAILED",
                "state": "ERROR",
                "description": "The owner's credentials changed.",
                "suggestedUserMessage": "Please reconnect your car.",
                "resolution": { "type": "REAUTHENTICATE" }
            }]
        },
        "meta": { "version": "4.0", "deliveryId": "d", "mode": "LIVE" }
    })
    .to_string()
}

/// Two vehicles: `car-1` with accepted, duplicate, out-of-sequence and implausible readings and an
/// error only its owner can clear; `car-2` registered with no reading. Returns the void reasons.
fn seed(app: &TestApp) -> Vec<String> {
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    app.store
        .register_vehicle("sc-2", "car-2")
        .expect("register");
    let now = chrono::Utc::now().timestamp_millis();
    for (id, km, hours_ago, outcome) in [
        ("ev-a", 10_000.0, 48, "created"),
        ("ev-b", 10_100.0, 24, "created"),
        ("ev-dup", 10_100.0, 24, "duplicate"),
        ("ev-late", 10_200.0, 36, "out_of_sequence"),
        ("ev-jump", 60_000.0, 12, "implausible_jump"),
        ("ev-c", 10_150.0, 6, "created"),
    ] {
        let body = odometer_event(id, "sc-1", km, "km", now - hours_ago * H);
        assert_eq!(app.post_signed(body.as_bytes()).status, 200, "{id}");
        assert_eq!(app.outcome(id), outcome, "{id}");
    }
    let stray = odometer_event("ev-stray", "sc-unknown", 5.0, "km", now - H);
    assert_eq!(app.post_signed(stray.as_bytes()).status, 200);
    assert_eq!(
        app.post_signed(error_event("ev-err", "sc-1").as_bytes())
            .status,
        200
    );
    assert_eq!(app.outcome("ev-err"), "vehicle_error_recorded");
    let entries = app
        .store
        .entries_page("car-1", true, 100, None)
        .expect("entries");
    let reasons: Vec<String> = entries
        .iter()
        .filter(|e| e.void)
        .map(|e| e.void_reason.clone().expect("a void entry has a reason"))
        .collect();
    assert_eq!(reasons.len(), 2, "{entries:?}");
    reasons
}

/// Text as the pages write it (maud escapes `&`, `<`, `>` and `"`).
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[test]
fn the_pages_are_off_without_a_password() {
    let app = spawn_app();
    for path in ["/ui", "/ui/", "/ui/events", "/ui/vehicles/car-1"] {
        let answer = get_with(&app, path, Some(&basic("ops:anything")));
        assert_eq!(answer.status, 404, "{path}");
        assert!(!answer.body.contains("<html"), "{path}: {}", answer.body);
    }
}

#[test]
fn no_page_is_served_without_the_password() {
    let app = spawn_app_with(
        TestDatabase::sqlite(),
        PoolOptions::default(),
        with_password,
    );
    app.store
        .register_vehicle("sc-1", "car-1")
        .expect("register");
    let wrong = [
        None,
        Some(basic("ops:wrong-password")),
        Some(basic(&format!("ops:{PASSWORD}x"))),
        Some(basic(PASSWORD)),
        Some(format!("Bearer {PASSWORD}")),
        Some(format!("Basic {PASSWORD}")),
    ];
    for path in [
        "/ui",
        "/ui/",
        "/ui/events?outcome=created",
        "/ui/vehicles/car-1",
        "/ui/no-such-page",
    ] {
        for authorization in &wrong {
            let answer = get_with(&app, path, authorization.as_deref());
            assert_eq!(answer.status, 401, "{path} with {authorization:?}");
            assert!(
                answer
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Basic realm=")),
                "{path}: {:?}",
                answer.headers
            );
            assert_protected(path, &answer);
            assert!(!answer.body.contains("car-1"), "{path}: {}", answer.body);
        }
    }
    // Any user name; the scheme in any case.
    for authorization in [
        basic(&format!("ops:{PASSWORD}")),
        basic(&format!(":{PASSWORD}")),
        basic(&format!("admin:{PASSWORD}")).replace("Basic", "basic"),
    ] {
        assert_eq!(get_with(&app, "/ui/", Some(&authorization)).status, 200);
    }
    assert_eq!(page(&app, "/ui/vehicles/car-1").status, 200);
    let missing = page(&app, "/ui/no-such-page");
    assert_eq!(missing.status, 404);
    assert_accessible("/ui/no-such-page", &missing.body);
}

#[test]
fn the_overview_shows_deliveries_backlog_and_the_vehicles_needing_attention() {
    for app in spawn_ui_apps() {
        seed(&app);
        let answer = page(&app, "/ui/");
        assert_eq!(answer.status, 200);
        let body = &answer.body;
        assert_accessible("/ui/", body);
        // The 24-hour chart: 24 bars, each titled with its hour's outcomes.
        assert!(body.contains("<svg class=\"chart\""), "{body}");
        assert_eq!(body.matches("<g><title>").count(), 24, "{body}");
        assert!(body.contains(" created"), "{body}");
        let created_row = body
            .split("<tr>")
            .find(|row| row.contains("href=\"/ui/events?outcome=created\""))
            .expect("a row for created");
        assert!(
            created_row.contains("<td class=\"num\">3</td>"),
            "{created_row}"
        );
        for outcome in [
            "created",
            "duplicate",
            "out_of_sequence",
            "implausible_jump",
            "unknown_vehicle",
            "vehicle_error_recorded",
        ] {
            assert!(
                body.contains(&format!("href=\"/ui/events?outcome={outcome}\"")),
                "{outcome}: {body}"
            );
        }
        assert!(body.contains("Last delivery from Smartcar"), "{body}");
        // Backlog: nothing pending, retrying or dead; the spool is there on PostgreSQL only.
        assert!(
            body.contains(
                "<span class=\"n\">0</span><a class=\"k\" href=\"/ui/events?outcome=dead\">"
            ),
            "{body}"
        );
        // car-1 needs its owner; car-2 has no reading yet.
        let attention = body
            .split("<h2 id=\"attention\">Needs attention</h2>")
            .nth(1)
            .and_then(|s| s.split("<h2>").next())
            .expect("attention section");
        assert!(
            attention.contains("href=\"/ui/vehicles/car-1\""),
            "{attention}"
        );
        assert!(attention.contains("owner must reconnect"), "{attention}");
        assert!(
            attention.contains("CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED"),
            "{attention}"
        );
        assert!(
            attention.contains("href=\"/ui/vehicles/car-2\"") && attention.contains("no reading"),
            "{attention}"
        );
    }
}

#[test]
fn a_vehicle_page_draws_the_odometer_and_lists_void_readings_with_their_reasons() {
    for app in spawn_ui_apps() {
        let reasons = seed(&app);
        let answer = page(&app, "/ui/vehicles/car-1");
        assert_eq!(answer.status, 200);
        let body = &answer.body;
        assert_accessible("/ui/vehicles/car-1", body);
        assert!(body.contains("<h1>Vehicle car-1</h1>"), "{body}");
        assert_eq!(body.matches("<polyline").count(), 1, "{body}");
        let chart = body
            .split("<svg")
            .nth(1)
            .and_then(|s| s.split("</svg>").next())
            .expect("chart");
        let void_list = body
            .split("<h2>Void readings</h2>")
            .nth(1)
            .and_then(|s| s.split("<h2>").next())
            .expect("void list");
        for reason in &reasons {
            // On hover (the cross's title) and in the list.
            assert!(chart.contains(&escaped(reason)), "{reason}: {chart}");
            assert!(
                void_list.contains(&escaped(reason)),
                "{reason}: {void_list}"
            );
        }
        assert!(void_list.contains("ev-late") && void_list.contains("ev-jump"));
        assert!(!void_list.contains("ev-a<"), "{void_list}");
        // The latest reading, the signals and the open error.
        assert!(body.contains("10\u{202f}150.0\u{a0}km"), "{body}");
        assert!(
            body.contains("<code>odometer-traveleddistance</code>"),
            "{body}"
        );
        assert!(
            body.contains("CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED")
                && body.contains("Please reconnect your car."),
            "{body}"
        );
        // A window of 1 day leaves out the reading of 36 hours ago.
        let day = page(&app, "/ui/vehicles/car-1?days=1");
        assert!(day.body.contains("over the last 1 day<"), "{}", day.body);
        assert!(
            day.body.contains("ev-jump") && !day.body.contains("ev-late"),
            "{}",
            day.body
        );
        for bad in ["0", "366", "-1", "x", "1.5"] {
            let answer = page(&app, &format!("/ui/vehicles/car-1?days={bad}"));
            assert_eq!(answer.status, 400, "days={bad}");
            assert!(answer.body.contains("days must be"), "{}", answer.body);
        }
        let unknown = page(&app, "/ui/vehicles/no-such-car");
        assert_eq!(unknown.status, 404);
        assert!(unknown.body.contains("no-such-car"), "{}", unknown.body);
    }
}

#[test]
fn the_events_page_filters_by_outcome_and_links_to_vehicles() {
    for app in spawn_ui_apps() {
        seed(&app);
        let all = page(&app, "/ui/events");
        assert_eq!(all.status, 200);
        assert_accessible("/ui/events", &all.body);
        assert_eq!(all.body.matches("<tr>").count(), 1 + 8, "{}", all.body);
        assert!(all
            .body
            .contains("<a href=\"/ui/vehicles/car-1\">car-1</a>"));
        assert!(
            all.body
                .contains("<code>sc-unknown</code><span class=\"muted\"> (not registered)</span>"),
            "{}",
            all.body
        );
        let created = page(&app, "/ui/events?outcome=created&limit=2");
        assert_eq!(created.status, 200);
        let rows: Vec<&str> = created.body.split("<tr>").skip(2).collect();
        assert_eq!(rows.len(), 2, "{}", created.body);
        assert!(rows.iter().all(|r| r.contains(">created</span>")));
        // The newest first: ev-c was sent after ev-b.
        assert!(
            rows[0].contains("ev-c") && rows[1].contains("ev-b"),
            "{rows:?}"
        );
        assert!(created
            .body
            .contains("<option value=\"created\" selected>created</option>"));
        let none = page(&app, "/ui/events?outcome=dead");
        assert!(
            none.body.contains("No events with outcome"),
            "{}",
            none.body
        );
        assert_eq!(page(&app, "/ui/events?outcome=&limit=").status, 200);
        for bad in [
            "outcome=nope",
            "outcome=%3Cscript%3E",
            "limit=0",
            "limit=501",
            "limit=ten",
        ] {
            let answer = page(&app, &format!("/ui/events?{bad}"));
            assert_eq!(answer.status, 400, "{bad}");
            assert!(!answer.body.contains("<script>"), "{}", answer.body);
            assert_accessible(bad, &answer.body);
        }
        assert!(page(&app, "/ui/events?outcome=nope")
            .body
            .contains("unknown outcome &quot;nope&quot;"));
    }
}

#[test]
fn ids_and_texts_from_events_are_escaped() {
    let app = spawn_app_with(
        TestDatabase::sqlite(),
        PoolOptions::default(),
        with_password,
    );
    let app_id = "<script>alert(1)</script>";
    // Printable ASCII without spaces: within the id policy, and still markup.
    let smartcar_id = "sc-<img/src=x/onerror=alert(2)>";
    app.store
        .register_vehicle(smartcar_id, app_id)
        .expect("register");
    let now = chrono::Utc::now().timestamp_millis();
    for (id, km, hours_ago) in [("x-1", 100.0, 30), ("x-2", 90.0, 20)] {
        let body = odometer_event(id, smartcar_id, km, "km", now - hours_ago * H);
        assert_eq!(app.post_signed(body.as_bytes()).status, 200);
    }
    assert_eq!(app.outcome("x-2"), "out_of_sequence");
    let href = "/ui/vehicles/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
    for path in ["/ui/", "/ui/events", href] {
        let answer = page(&app, path);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(!answer.body.contains("<script"), "{path}: {}", answer.body);
        assert!(!answer.body.contains("<img"), "{path}: {}", answer.body);
        assert!(
            answer
                .body
                .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || answer.body.contains("&lt;img/src=x/onerror=alert(2)&gt;"),
            "{path}: {}",
            answer.body
        );
        assert_accessible(path, &answer.body);
    }
    assert!(page(&app, "/ui/events")
        .body
        .contains(&format!("href=\"{href}\"")));
}

#[test]
fn the_overview_bounds_every_table_and_links_to_the_rest() {
    let app = spawn_app_with(
        TestDatabase::sqlite(),
        PoolOptions::default(),
        with_password,
    );
    // 1,200 vehicles, every other one deactivated, none with a reading: all need attention.
    for i in 0..1_200 {
        let sc = format!("sc-{i:04}");
        app.store
            .register_vehicle(&sc, &format!("car-{i:04}"))
            .expect("register");
        if i % 2 == 1 {
            app.store
                .set_vehicle_active(&sc, false)
                .expect("deactivate");
        }
    }
    let rows = |body: &str, section: &str, next: &str| -> usize {
        let start = body.find(section).expect("the section");
        let end = body[start..].find(next).map_or(body.len(), |e| start + e);
        body[start..end].matches("<tr>").count()
    };
    let first = page(&app, "/ui/");
    assert_eq!(first.status, 200);
    // Header row plus at most 100 rows of attention and 1,000 of vehicles.
    assert_eq!(
        rows(&first.body, "id=\"attention\"", "id=\"vehicles\""),
        1 + 100
    );
    assert_eq!(rows(&first.body, "id=\"vehicles\"", "</main>"), 1 + 1_000);
    assert!(first.body.len() < 600_000, "{} bytes", first.body.len());
    assert!(
        first.body.contains("and 200 more vehicles."),
        "the vehicles' tail"
    );
    assert!(first.body.contains("href=\"/ui/?vehicles=1000#vehicles\""));
    assert!(first.body.contains("more vehicles need attention"));
    assert!(first.body.contains("href=\"/ui/?attention=100#attention\""));

    // The links show the rest.
    let next = page(&app, "/ui/?vehicles=1000");
    assert_eq!(next.status, 200);
    assert_eq!(rows(&next.body, "id=\"vehicles\"", "</main>"), 1 + 200);
    assert!(next.body.contains("car-1199"));
    assert!(!next.body.contains("more vehicles."));
    let attention = page(&app, "/ui/?attention=100");
    assert_eq!(attention.status, 200);
    assert_eq!(
        rows(&attention.body, "id=\"attention\"", "id=\"vehicles\""),
        1 + 100
    );
    assert!(attention.body.contains("101–200 of"));

    // Forged offsets are refused.
    for bad in [
        "attention=x",
        "vehicles=-1",
        "vehicles=99999999999",
        "page=2",
    ] {
        assert_eq!(page(&app, &format!("/ui/?{bad}")).status, 400, "{bad}");
    }
}
