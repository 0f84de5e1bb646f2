//! `SC-Signature` verification and VERIFY challenge answers.
//!
//! Both are the same primitive: lowercase hex HMAC-SHA256 keyed with the Application Management
//! Token. That is why a challenge is only answered when it cannot be an event body
//! ([`is_safe_challenge`]).

use std::fmt;

use ring::hmac;

/// The request header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "SC-Signature";

/// Bytes in an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// The longest challenge answered; Smartcar's are UUIDs or 16 random characters.
const MAX_CHALLENGE_LEN: usize = 128;

/// Lowercase hex HMAC-SHA256 of `challenge` keyed with `key`: the answer to a VERIFY request.
pub fn hash_challenge(key: &[u8], challenge: &str) -> String {
    sign(key, challenge.as_bytes())
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `key`: the `SC-Signature` Smartcar sends.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    sign_with(&hmac::Key::new(hmac::HMAC_SHA256, key), body)
}

fn sign_with(key: &hmac::Key, message: &[u8]) -> String {
    base16ct::lower::encode_string(hmac::sign(key, message).as_ref())
}

/// Whether `challenge` matches `^[A-Za-z0-9_-]{1,128}$` and may therefore be answered.
///
/// The answer is a valid `SC-Signature` for the challenge text, so answering anything would sign
/// forged event bodies on request; no JSON document can match this pattern.
pub fn is_safe_challenge(challenge: &str) -> bool {
    (1..=MAX_CHALLENGE_LEN).contains(&challenge.len())
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `body` could be signed by the handshake: a safe challenge, also once surrounding
/// ASCII whitespace is taken away (the answer is over the exact challenge text, so only the
/// untrimmed form can carry it; refusing the trimmed form too keeps the rule independent of how
/// a challenge is read). No real event body is such a bare token.
fn is_challenge_shaped(body: &[u8]) -> bool {
    std::str::from_utf8(body.trim_ascii()).is_ok_and(is_safe_challenge)
}

/// The outcome of checking a request's `SC-Signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The signature matches the body under one of the keys.
    Valid,
    /// The request has no `SC-Signature` header, or one that is empty or only whitespace.
    Missing,
    /// The header holds something, but it is malformed or matches under no key, or the body is
    /// one the VERIFY handshake would sign (see [`SigningKeys::verify`]).
    Invalid,
}

/// Why a set of signing keys was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A configured key is empty (an empty key would make every signature guessable).
    #[error("a signing key is empty")]
    Empty,
    /// No key was configured at all.
    #[error("no signing key configured")]
    NoKeys,
}

/// The keys a signature may be made with: the current Application Management Token first, then
/// any others still accepted (previous token, an operator-configured secret).
#[derive(Clone)]
pub struct SigningKeys {
    // Split so that "at least one key" holds by construction, not by an index that could panic.
    current: hmac::Key,
    others: Vec<hmac::Key>,
}

impl SigningKeys {
    /// Builds the key set; the first key is the current one. Every key must be non-empty.
    pub fn new<I, K>(keys: I) -> Result<SigningKeys, KeyError>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        let mut keys = keys.into_iter().map(|k| {
            let k = k.as_ref();
            if k.is_empty() {
                Err(KeyError::Empty)
            } else {
                Ok(hmac::Key::new(hmac::HMAC_SHA256, k))
            }
        });
        let current = keys.next().ok_or(KeyError::NoKeys)??;
        let others = keys.collect::<Result<Vec<_>, _>>()?;
        Ok(SigningKeys { current, others })
    }

    /// Checks the raw `SC-Signature` header value against `body` under every key.
    ///
    /// Only surrounding ASCII whitespace is trimmed; the rest must be exactly 64 hex digits (either
    /// case). The comparison is ring's constant-time one on the decoded 32 bytes. An empty (or
    /// whitespace-only) header carries no signature, so it is [`SignatureCheck::Missing`], exactly
    /// like no header: some senders write the header with no value on unsigned requests.
    ///
    /// A body that is itself a challenge the handshake would answer ([`is_safe_challenge`]) is
    /// never [`SignatureCheck::Valid`]: its signature is exactly what an unsigned VERIFY gets
    /// back, so accepting it would let anyone without the key have such bodies stored.
    ///
    /// ```
    /// use meterhook_smartcar::{SignatureCheck, SigningKeys};
    ///
    /// // The current token first, then the previous one while rotating.
    /// let keys = SigningKeys::new(["new-token", "old-token"])?;
    /// let body = br#"{"eventId":"e-1","eventType":"VEHICLE_STATE"}"#;
    /// let by_old = SigningKeys::new(["old-token"])?.sign(body);
    /// assert_eq!(keys.verify(Some(by_old.as_bytes()), body), SignatureCheck::Valid);
    /// assert_eq!(keys.verify(Some(by_old.as_bytes()), b"{}"), SignatureCheck::Invalid);
    /// assert_eq!(keys.verify(Some(b"  "), body), SignatureCheck::Missing);
    /// assert_eq!(keys.verify(None, body), SignatureCheck::Missing);
    /// # Ok::<(), meterhook_smartcar::KeyError>(())
    /// ```
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> SignatureCheck {
        let Some(header) = header.map(<[u8]>::trim_ascii).filter(|h| !h.is_empty()) else {
            return SignatureCheck::Missing;
        };
        let Some(tag) = decode_tag(header) else {
            return SignatureCheck::Invalid;
        };
        if is_challenge_shaped(body) {
            return SignatureCheck::Invalid;
        }
        if self.keys().any(|k| hmac::verify(k, body, &tag).is_ok()) {
            SignatureCheck::Valid
        } else {
            SignatureCheck::Invalid
        }
    }

    /// The answer to a VERIFY challenge, made with the current (first) key.
    ///
    /// Callers must check [`is_safe_challenge`] first.
    pub fn answer_challenge(&self, challenge: &str) -> String {
        sign_with(&self.current, challenge.as_bytes())
    }

    /// The `SC-Signature` the current (first) key gives `body`; for tests and tools.
    pub fn sign(&self, body: &[u8]) -> String {
        sign_with(&self.current, body)
    }

    /// How many keys are accepted (never zero).
    #[allow(clippy::len_without_is_empty)] // never empty by construction
    pub fn len(&self) -> usize {
        1 + self.others.len()
    }

    fn keys(&self) -> impl Iterator<Item = &hmac::Key> {
        std::iter::once(&self.current).chain(&self.others)
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKeys([redacted; {}])", self.len())
    }
}

/// Decodes exactly 64 hex digits (either case) into a tag; anything else is `None`.
fn decode_tag(hex: &[u8]) -> Option<[u8; TAG_LEN]> {
    // Checked first: the decoder would accept a shorter input into a prefix of the buffer.
    if hex.len() != TAG_LEN * 2 {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    base16ct::mixed::decode(hex, &mut tag).ok()?;
    Some(tag)
}

/// The JSON body answering a VERIFY request: `{"challenge":"<hex>"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChallengeAnswer {
    /// The hex HMAC of the challenge under the current key.
    pub challenge: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_tag(hex: &str, ok: bool) {
        assert_eq!(decode_tag(hex.as_bytes()).is_some(), ok, "{hex:?}");
    }

    #[test]
    fn tag_decoding() {
        let good = "4c05a8da471f05156ad717baa4017acd13a3a809850b9ca7d3301dcaaa854f70";
        check_tag(good, true);
        check_tag(&good.to_uppercase(), true);
        check_tag(&good[..62], false);
        check_tag(&good[..63], false);
        check_tag(&format!("{good}00"), false);
        check_tag(&format!("{}g", &good[..63]), false);
        check_tag(&format!("{}é", &good[..62]), false);
        check_tag("", false);
    }

    #[test]
    fn keys_are_never_printed() {
        let keys = SigningKeys::new(["super-secret-amt", "old-amt"]).expect("valid keys");
        assert_eq!(format!("{keys:?}"), "SigningKeys([redacted; 2])");
        assert_eq!(format!("{keys:#?}"), "SigningKeys([redacted; 2])");
    }

    #[test]
    fn key_set_rules() {
        assert_eq!(
            SigningKeys::new(Vec::<&str>::new()).map(|k| k.len()),
            Err(KeyError::NoKeys)
        );
        assert_eq!(
            SigningKeys::new([""]).map(|k| k.len()),
            Err(KeyError::Empty)
        );
        assert_eq!(
            SigningKeys::new(["a", ""]).map(|k| k.len()),
            Err(KeyError::Empty)
        );
        assert_eq!(SigningKeys::new(["a"]).map(|k| k.len()), Ok(1));
        assert_eq!(
            SigningKeys::new([b"a".to_vec(), b"b".to_vec()]).map(|k| k.len()),
            Ok(2)
        );
    }

    #[test]
    fn a_challenge_answer_is_never_a_valid_signature() {
        let keys = SigningKeys::new(["amt", "old"]).expect("valid keys");
        for body in [
            "abc", "123", "null", "true", "false", "-1", "1e5", "a_b-c", " abc", "abc\n",
        ] {
            let answer = keys.answer_challenge(body.trim());
            assert_eq!(
                keys.verify(Some(answer.as_bytes()), body.as_bytes()),
                SignatureCheck::Invalid,
                "{body:?}"
            );
            // Signed with the real key, too: such a body is refused whoever signed it.
            let real = keys.sign(body.as_bytes());
            assert_eq!(
                keys.verify(Some(real.as_bytes()), body.as_bytes()),
                SignatureCheck::Invalid,
                "{body:?}"
            );
            let old = sign(b"old", body.as_bytes());
            assert_eq!(
                keys.verify(Some(old.as_bytes()), body.as_bytes()),
                SignatureCheck::Invalid,
                "{body:?}"
            );
        }
        // Bodies that are not a bare token stay verifiable.
        for body in ["{}", "[1]", "\"abc\"", "abc def", "", &"a".repeat(129)] {
            let real = keys.sign(body.as_bytes());
            assert_eq!(
                keys.verify(Some(real.as_bytes()), body.as_bytes()),
                SignatureCheck::Valid,
                "{body:?}"
            );
        }
    }

    #[test]
    fn challenge_answer_serialises_as_smartcar_expects() {
        let answer = ChallengeAnswer {
            challenge: "abc".to_owned(),
        };
        assert_eq!(
            serde_json::to_string(&answer).expect("serialisable"),
            r#"{"challenge":"abc"}"#
        );
    }
}
