//! The read API's bearer token: `Authorization: Bearer <token>`, the scheme in any case (RFC 9110
//! §11.1: schemes are case-insensitive), the token compared in constant time.

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

/// The API token, kept as its SHA-256 so that comparing reveals neither content nor length.
#[derive(Clone)]
pub struct ApiToken([u8; 32]);

impl ApiToken {
    /// Wraps the configured token.
    pub fn new(token: &str) -> ApiToken {
        ApiToken(digest(token.as_bytes()))
    }

    /// Whether the request carries `Authorization: Bearer <token>`.
    pub fn admits(&self, req: &HttpRequest) -> bool {
        req.headers()
            .get(AUTHORIZATION)
            .is_some_and(|value| self.admits_header(value.as_bytes()))
    }

    /// Whether an `Authorization` header value is `Bearer <token>`; constant time in the token.
    pub fn admits_header(&self, value: &[u8]) -> bool {
        let Some(space) = value.iter().position(|&b| b == b' ') else {
            return false;
        };
        let (scheme, credentials) = value.split_at(space);
        scheme.eq_ignore_ascii_case(b"Bearer")
            && bool::from(digest(credentials.trim_ascii()).ct_eq(&self.0))
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken([redacted])")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(header: &str, admitted: bool) {
        let token = ApiToken::new("tok-123");
        assert_eq!(
            token.admits_header(header.as_bytes()),
            admitted,
            "{header:?}"
        );
    }

    #[test]
    fn bearer_in_any_case_with_the_exact_token() {
        check("Bearer tok-123", true);
        check("bearer tok-123", true);
        check("BEARER tok-123", true);
        check("Bearer   tok-123  ", true);
        check("Bearer TOK-123", false);
        check("Bearer tok-1234", false);
        check("Bearer ", false);
        check("Bearertok-123", false);
        check("Basic tok-123", false);
        check("tok-123", false);
        check("", false);
    }
}
