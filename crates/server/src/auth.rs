//! Credentials: the read API's bearer token (`Authorization: Bearer <token>`) and the status
//! page's password (`Authorization: Basic …`, RFC 7617). Schemes in any case (RFC 9110 §11.1:
//! schemes are case-insensitive); secrets compared in constant time, through their SHA-256 so that
//! comparing reveals neither content nor length.

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use base64::Engine as _;
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
        authorization(req).is_some_and(|value| self.admits_header(value))
    }

    /// Whether an `Authorization` header value is `Bearer <token>`; constant time in the token.
    pub fn admits_header(&self, value: &[u8]) -> bool {
        credentials(value, b"Bearer").is_some_and(|token| matches(&self.0, token))
    }
}

/// The status page's password (`METERHOOK_UI_PASSWORD`), kept as its SHA-256.
#[derive(Clone)]
pub struct UiPassword([u8; 32]);

impl UiPassword {
    /// Wraps the configured password.
    pub fn new(password: &str) -> UiPassword {
        UiPassword(digest(password.as_bytes()))
    }

    /// Whether the request carries `Authorization: Basic` with this password.
    pub fn admits(&self, req: &HttpRequest) -> bool {
        authorization(req).is_some_and(|value| self.admits_header(value))
    }

    /// Whether an `Authorization` header value is `Basic base64(user:password)` with this
    /// password; any user name (there is one account). Constant time in the password.
    pub fn admits_header(&self, value: &[u8]) -> bool {
        let Some(credentials) = credentials(value, b"Basic") else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        matches(&self.0, &decoded[colon + 1..])
    }
}

impl std::fmt::Debug for UiPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UiPassword([redacted])")
    }
}

/// The request's `Authorization` header value.
fn authorization(req: &HttpRequest) -> Option<&[u8]> {
    req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())
}

/// The credentials of an `Authorization` value of `scheme` (in any case), trimmed.
fn credentials<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (given, credentials) = value.split_at(space);
    given
        .eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim_ascii())
}

/// Whether `candidate` is the secret whose digest is `expected`, in constant time.
fn matches(expected: &[u8; 32], candidate: &[u8]) -> bool {
    bool::from(digest(candidate).ct_eq(expected))
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

    #[track_caller]
    fn check_basic(header: &str, admitted: bool) {
        let password = UiPassword::new("pass:word");
        assert_eq!(
            password.admits_header(header.as_bytes()),
            admitted,
            "{header:?}"
        );
    }

    fn basic(user_and_password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(user_and_password)
    }

    #[test]
    fn basic_in_any_case_with_any_user_and_the_exact_password() {
        // The password may hold a colon: the user name ends at the first one (RFC 7617).
        check_basic(&format!("Basic {}", basic("admin:pass:word")), true);
        check_basic(&format!("basic {}", basic(":pass:word")), true);
        check_basic(&format!("BASIC  {} ", basic("ops:pass:word")), true);
        check_basic(&format!("Basic {}", basic("admin:pass:wor")), false);
        check_basic(&format!("Basic {}", basic("admin:PASS:WORD")), false);
        check_basic(&format!("Basic {}", basic("pass:word")), false);
        check_basic(&format!("Basic {}", basic("password")), false);
        check_basic(&format!("Bearer {}", basic("admin:pass:word")), false);
        check_basic("Basic not*base64", false);
        check_basic("Basic", false);
        check_basic("", false);
    }
}
