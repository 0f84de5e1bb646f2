//! The read API's bearer token, against the real server.

use meterhook_store::testing::TestDatabase;
use meterhook_store::PoolOptions;

use crate::helpers::*;

const API_TOKEN: &str = "api-token-0123456789";

#[test]
fn the_scheme_is_case_insensitive_and_the_token_is_not() {
    let app = spawn_app_with(TestDatabase::sqlite(), PoolOptions::default(), |s| {
        s.api_token = Some(meterhook::Secret::new(API_TOKEN));
    });
    let status = |authorization: &str| {
        agent()
            .get(format!("{}/api/vehicles/car-1/meter-entries", app.address))
            .header("Authorization", authorization)
            .call()
            .expect("sent")
            .status()
            .as_u16()
    };
    for accepted in [
        format!("Bearer {API_TOKEN}"),
        format!("bearer {API_TOKEN}"),
        format!("BEARER {API_TOKEN}"),
        format!("bEaReR   {API_TOKEN} "),
    ] {
        assert_eq!(status(&accepted), 200, "{accepted}");
    }
    for refused in [
        format!("Bearer {}", API_TOKEN.to_uppercase()),
        format!("Basic {API_TOKEN}"),
        format!("Bearer{API_TOKEN}"),
        format!("Bearers {API_TOKEN}"),
        API_TOKEN.to_owned(),
        "Bearer ".to_owned(),
    ] {
        assert_eq!(status(&refused), 401, "{refused}");
    }
}
