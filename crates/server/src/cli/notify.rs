//! `meterhook notify …`: the signed notifications of the changes (`METERHOOK_NOTIFY_URL`).

use clap::Subcommand;
use meterhook_store::Store;

use super::CliError;
use crate::feed;
use crate::notify::NotifySecret;

/// `meterhook notify …`
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Print a new signing secret (whsec_…) for METERHOOK_NOTIFY_SECRET and the app.
    NewSecret,
    /// Send changes again from their first attempt: the failed ones (--failed), or every change
    /// kept after a cursor (--after), delivered or not.
    Retry {
        /// Only the changes given up on after every retry.
        #[arg(long)]
        failed: bool,
        /// Only the changes after this cursor (a position); with --failed, the failed ones after it.
        #[arg(long, value_parser = cursor)]
        after: Option<i64>,
    },
    /// Where sending stands: changes waiting, failed, and the attempts at one change.
    Status {
        /// Also list the attempts at the change at this position.
        #[arg(long)]
        position: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn cursor(text: &str) -> Result<i64, String> {
    feed::parse_cursor(text).ok_or_else(|| format!("{text:?} is not a cursor (a position: 42)"))
}

/// Runs `meterhook notify new-secret`, which needs no settings.
pub fn new_secret() -> Result<(), CliError> {
    let secret = NotifySecret::generate().map_err(CliError::new)?;
    println!("{}", secret.expose());
    Ok(())
}

/// Runs the other `meterhook notify …` commands.
pub fn run(store: &Store, cmd: NotifyCommand) -> Result<(), CliError> {
    match cmd {
        NotifyCommand::NewSecret => new_secret(),
        NotifyCommand::Retry { failed, after } => {
            if !failed && after.is_none() {
                return Err(CliError::usage(
                    "say what to send again: --failed, --after CURSOR, or both",
                ));
            }
            let n = store.notify_requeue(after, failed)?;
            println!(
                "{n} change{} queued to be sent again (a running serve sends them)",
                if n == 1 { "" } else { "s" }
            );
            Ok(())
        }
        NotifyCommand::Status { position, json } => {
            let status = store.notify_status()?;
            let attempts = match position {
                Some(p) => store.notify_attempts(p)?,
                None => Vec::new(),
            };
            let oldest = status.oldest_unsent_at.map(crate::views::rfc3339);
            if json {
                let value = serde_json::json!({
                    "last_position": status.last_position,
                    "queued_through": status.queued_through,
                    "lag_records": status.lag_records(),
                    "pending": status.pending,
                    "failed": status.failed,
                    "oldest_unsent_at": oldest,
                    "attempts": attempts.iter().map(|a| serde_json::json!({
                        "attempted_at": crate::views::rfc3339(a.attempted_at),
                        "result": a.result,
                        "status": a.status,
                        "answer": a.answer,
                        "duration_ms": a.duration_ms,
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string(&value)?);
                return Ok(());
            }
            match status.queued_through {
                None => println!("notifications have not been on with this database"),
                Some(through) => println!(
                    "last change {}, queued through {through}; waiting {}, failed {}{}",
                    status.last_position,
                    status.lag_records(),
                    status.failed,
                    oldest.map_or_else(String::new, |t| format!("; oldest waiting since {t}"))
                ),
            }
            for a in attempts {
                println!(
                    "{}  {:<11}  {}  {} ms  {}",
                    crate::views::rfc3339(a.attempted_at),
                    a.result,
                    a.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    a.duration_ms,
                    super::cell(a.answer.as_deref().unwrap_or(""))
                );
            }
            Ok(())
        }
    }
}

/// `doctor`'s check of the notifications: a signed `meterhook.ping` to `METERHOOK_NOTIFY_URL`.
/// `None` when notifications are off; otherwise the line that passed, or the problem and its fix.
#[cfg(feature = "http-client")]
pub fn doctor_ping(settings: &crate::config::Settings) -> Option<Result<String, (String, String)>> {
    use meterhook_store::AttemptResult;
    let notify = match settings.notify() {
        Ok(notify) => notify?,
        Err(e) => {
            return Some(Err((
                e.to_string(),
                "correct METERHOOK_NOTIFY_SECRET".into(),
            )))
        }
    };
    let url = crate::notify::redacted_url(&notify.url);
    let attempt = crate::notify::ping(&notify);
    let answer = attempt
        .answer
        .as_deref()
        .map(|a| super::cell(a.chars().take(200).collect::<String>().trim()).into_owned())
        .unwrap_or_default();
    Some(match (attempt.result, attempt.status) {
        (AttemptResult::Delivered, Some(status)) => Ok(format!(
            "{url}: a signed meterhook.ping was answered {status} in {} ms",
            attempt.duration_ms
        )),
        (_, Some(status)) => Err((
            format!("{url}: a signed meterhook.ping was answered {status}: {answer}"),
            "the app must answer 2xx to a message whose signature verifies with \
             METERHOOK_NOTIFY_SECRET (README: Receive meterhook's notifications); 401 or 400 \
             often means the app has another secret"
                .into(),
        )),
        (_, None) => Err((
            format!("{url}: a signed meterhook.ping got no answer: {answer}"),
            "check the URL and that the app is running and reachable from here".into(),
        )),
    })
}
