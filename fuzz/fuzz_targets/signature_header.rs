//! `SC-Signature` verification on arbitrary headers and bodies: never a panic, and never `Valid`
//! unless the header is (after trimming ASCII whitespace) the body's HMAC in hex and the body is
//! not a bare challenge token (which the VERIFY answer would sign). Also
//! `is_safe_challenge` on the whole input as text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterhook_smartcar::{is_safe_challenge, sign, SignatureCheck, SigningKeys};

const KEY: &str = "test-amt-123";

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = SigningKeys::new([KEY]) else {
        return;
    };
    // The first byte is the header's length (at most 255 bytes); the rest of the input is split
    // there into header and body.
    let (header, body) = match data.split_first() {
        Some((&cut, rest)) => rest.split_at(usize::from(cut).min(rest.len())),
        None => (&data[..0], data),
    };
    let check = keys.verify(Some(header), body);
    if check == SignatureCheck::Valid {
        let expected = sign(KEY.as_bytes(), body);
        assert!(
            header.trim_ascii().eq_ignore_ascii_case(expected.as_bytes()),
            "accepted a header that is not the body's signature"
        );
    }
    assert_eq!(keys.verify(None, body), SignatureCheck::Missing);
    // The correct signature is always accepted, with surrounding whitespace too, unless the body
    // is a bare token the VERIFY handshake would sign: that is never accepted.
    let challenge_shaped = std::str::from_utf8(body.trim_ascii()).is_ok_and(is_safe_challenge);
    let expected = if challenge_shaped {
        SignatureCheck::Invalid
    } else {
        SignatureCheck::Valid
    };
    let good = keys.sign(body);
    assert_eq!(keys.verify(Some(good.as_bytes()), body), expected);
    assert_eq!(
        keys.verify(Some(format!(" {}\t", good.to_uppercase()).as_bytes()), body),
        expected
    );

    if let Ok(text) = std::str::from_utf8(data) {
        if is_safe_challenge(text) {
            assert!((1..=128).contains(&text.len()));
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            // A safe challenge can never be a JSON event body.
            assert!(meterhook_smartcar::parse_event(text.as_bytes()).is_err());
            let _ = keys.answer_challenge(text);
        }
    }
});
