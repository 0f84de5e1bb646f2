//! A Smartcar webhook endpoint without meterhook's server: `meterhook-smartcar` in a handler of
//! your own, served here over plain `std::net` so that it depends on no web framework. The
//! handler is what you would put in axum, actix-web or hyper: raw body and `SC-Signature` in,
//! status and JSON out.
//!
//! ```sh
//! SMARTCAR_MANAGEMENT_TOKEN=… cargo run -p meterhook-smartcar --example handler -- 127.0.0.1:3001
//! meterhook send-test-event --url http://127.0.0.1:3001/ --verify     # with the same token
//! ```
//!
//! It answers one request per connection and stops after `--requests N` (default: forever).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use meterhook_smartcar::{is_safe_challenge, parse_event, EventType, SignatureCheck, SigningKeys};

/// The framework-independent part: verify over the raw bytes, then parse and act.
fn handle(keys: &SigningKeys, signature: Option<&[u8]>, body: &[u8]) -> (u16, String) {
    let check = keys.verify(signature, body);
    let event = match parse_event(body) {
        Ok(event) => event,
        Err(e) => {
            return (
                400,
                serde_json::json!({ "error": e.to_string() }).to_string(),
            )
        }
    };
    if event.event_type == EventType::Verify && check != SignatureCheck::Invalid {
        return match event.challenge.as_deref().filter(|c| is_safe_challenge(c)) {
            Some(challenge) => (
                200,
                serde_json::json!({ "challenge": keys.answer_challenge(challenge) }).to_string(),
            ),
            None => (400, r#"{"error":"unsafe or missing challenge"}"#.to_owned()),
        };
    }
    if check != SignatureCheck::Valid {
        return (
            401,
            r#"{"error":"missing or invalid SC-Signature"}"#.to_owned(),
        );
    }
    // Store the event here before answering; this example only reports what it read.
    let reading = event
        .odometer_reading(meterhook_domain::Millis(chrono_free_now_ms()))
        .and_then(Result::ok);
    let km = reading.map(|r| r.distance.km());
    (
        200,
        serde_json::json!({
            "eventType": event.event_type.as_str(),
            "vehicle": event.vehicle_id,
            "odometerKm": km,
        })
        .to_string(),
    )
}

fn chrono_free_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads one HTTP/1.1 request (head and a `Content-Length` body, at most 64 KiB), answers it.
fn serve_one(keys: &SigningKeys, stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    let mut signature = None;
    let mut line = String::new();
    reader.read_line(&mut line)?; // the request line
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0).min(64 * 1024);
            } else if name.eq_ignore_ascii_case(meterhook_smartcar::SIGNATURE_HEADER) {
                signature = Some(value.as_bytes().to_vec());
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (status, answer) = handle(keys, signature.as_deref(), &body);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let mut remaining: Option<u64> = match (args.next().as_deref(), args.next()) {
        (Some("--requests"), Some(n)) => Some(n.parse()?),
        _ => None,
    };
    let token = std::env::var("SMARTCAR_MANAGEMENT_TOKEN")
        .map_err(|_| "set SMARTCAR_MANAGEMENT_TOKEN to the Application Management Token")?;
    let keys = SigningKeys::new([token.trim()])?;
    let listener = TcpListener::bind(&address)?;
    println!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        if let Err(e) = serve_one(&keys, stream?) {
            eprintln!("request failed: {e}");
        }
        if let Some(n) = remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_before_it_reads() {
        let keys = SigningKeys::new(["tok"]).expect("keys");
        let body = br#"{"eventId":"e","eventType":"VEHICLE_STATE","data":{"vehicle":{"id":"v"}}}"#;
        assert_eq!(handle(&keys, Some(b"00"), body).0, 401);
        let signed = keys.sign(body);
        assert_eq!(handle(&keys, Some(signed.as_bytes()), body).0, 200);
        let verify = br#"{"eventType":"VERIFY","data":{"challenge":"abc"}}"#;
        let (status, answer) = handle(&keys, None, verify);
        assert_eq!(status, 200);
        assert!(answer.contains(&keys.answer_challenge("abc")));
    }
}
