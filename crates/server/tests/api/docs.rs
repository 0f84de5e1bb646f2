//! The docs show only command lines the binary accepts: every `meterhook …` line in README.md and
//! docs/*.md goes through the binary's own parser (`Cli`, what `main` parses), which never runs
//! them.
//!
//! - A line in a shell code block is parsed whole: same subcommands, same flags, values that
//!   parse. Placeholders (`ENTRY_ID`, `<SMARTCAR_ID>`) stand for `1`; optional parts (`[--json]`)
//!   are parsed as if given.
//! - A command in inline code (`meterhook stats [--since 24h]`) uses a grammar of its own
//!   (`[…]`, `a\|b`, `(…)`): its subcommands must exist, and each of its `--flags` must be one that
//!   subcommand takes.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use meterhook::cli::Cli;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and docs/*.md, with their text.
fn documents() -> Vec<(String, String)> {
    let mut paths = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(repo()).unwrap_or(&p).display().to_string();
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect()
}

/// A line of a document, for messages.
struct Shown {
    at: String,
    text: String,
}

/// The lines of shell code blocks (continuations joined), and the inline code spans outside
/// code blocks.
fn shell_lines_and_spans(name: &str, text: &str) -> (Vec<Shown>, Vec<Shown>) {
    let (mut lines, mut spans) = (Vec::new(), Vec::new());
    let mut block: Option<bool> = None; // Some(is shell) inside a fenced block
    let mut pending = String::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", n + 1);
        let trimmed = line.trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(matches!(
                    lang.trim(),
                    "" | "sh" | "bash" | "shell" | "console"
                )),
            };
            continue;
        }
        match block {
            Some(true) => {
                if let Some(head) = line.strip_suffix('\\') {
                    pending.push_str(head);
                    pending.push(' ');
                    continue;
                }
                pending.push_str(line);
                lines.push(Shown {
                    at,
                    text: std::mem::take(&mut pending),
                });
            }
            Some(false) => {}
            None => {
                // Double-backtick spans hold single backticks; both kinds are spans.
                let mut rest = line;
                while let Some(start) = rest.find('`') {
                    let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
                    let fence = &rest[start..start + ticks];
                    let after = &rest[start + ticks..];
                    let Some(end) = after.find(fence) else { break };
                    spans.push(Shown {
                        at: at.clone(),
                        text: after[..end].trim().to_owned(),
                    });
                    rest = &after[end + ticks..];
                }
            }
        }
    }
    (lines, spans)
}

/// Splits a shell line into words as sh would (quotes, backslashes, `$(…)`, comments), keeping
/// the operators `&&`, `||`, `;` and `|` as words of their own.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\'' if depth == 0 => {
                started = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' if depth == 0 => {
                started = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                started = true;
                word.extend(chars.next());
            }
            '$' if chars.peek() == Some(&'(') => {
                started = true;
                word.push(c);
                word.extend(chars.next());
                depth += 1;
            }
            ')' if depth > 0 => {
                word.push(c);
                depth -= 1;
            }
            c if depth > 0 => word.push(c),
            '#' if !started => break,
            c if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            ';' | '&' | '|' => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
                let mut op = c.to_string();
                if chars.peek() == Some(&c) {
                    op.extend(chars.next());
                }
                out.push(op);
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// The arguments of every meterhook invocation in a shell line: `meterhook ARGS`,
/// `VAR=value /usr/local/bin/meterhook ARGS`, `cargo run … -p meterhook -- ARGS`,
/// `runuser -u USER -- meterhook ARGS`, and those inside `sh -c '…'`.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for command in words(line).split(|w| matches!(w.as_str(), "&&" | "||" | ";" | "|" | "&")) {
        let mut rest = command
            .iter()
            .skip_while(|w| {
                matches!(w.as_str(), "sudo" | "exec" | "env")
                    || w.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
            })
            .peekable();
        let Some(program) = rest.next() else { continue };
        let args: Vec<String> = rest.cloned().collect();
        if Path::new(program)
            .file_name()
            .is_some_and(|n| n == "meterhook")
        {
            found.push(args);
        } else if program == "cargo" && args.first().is_some_and(|a| a == "run") {
            if args.iter().any(|a| a == "meterhook") {
                let after: Vec<String> = args
                    .iter()
                    .skip_while(|a| *a != "--")
                    .skip(1)
                    .cloned()
                    .collect();
                found.push(after);
            }
        } else if program == "runuser" {
            // `runuser -u USER -- meterhook ARGS`
            let mut after = args.iter().skip_while(|a| *a != "--").skip(1);
            if after
                .next()
                .is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == "meterhook"))
            {
                found.push(after.cloned().collect());
            }
        } else if program == "sh" || program == "bash" {
            // `sh -c 'script'`: the script's own commands.
            if let Some(i) = args.iter().position(|a| a == "-c") {
                if let Some(script) = args.get(i + 1) {
                    found.extend(invocations(script));
                }
            }
        }
    }
    found
}

/// A placeholder (`ENTRY_ID`, `<APP_ID>`, `N`) as a value every argument accepts; an optional
/// part (`[--json]`, `[--limit 100]`) as given.
fn concrete(word: &str) -> String {
    let word = word.trim_start_matches('[').trim_end_matches(']');
    let bare = word
        .strip_prefix('<')
        .and_then(|w| w.strip_suffix('>'))
        .unwrap_or(word);
    let placeholder = bare.chars().any(|c| c.is_ascii_uppercase())
        && bare
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if placeholder || bare != word {
        "1".to_owned()
    } else {
        word.to_owned()
    }
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, text) in documents() {
        let (lines, _) = shell_lines_and_spans(&name, &text);
        for line in lines {
            for args in invocations(&line.text) {
                checked += 1;
                let argv =
                    std::iter::once("meterhook".to_owned()).chain(args.iter().map(|a| concrete(a)));
                if let Err(e) = Cli::try_parse_from(argv) {
                    failures.push(format!(
                        "{}: {}\n  {}",
                        line.at,
                        line.text.trim(),
                        e.to_string().lines().next().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "command lines the binary refuses:\n{}",
        failures.join("\n")
    );
    // README.md alone shows a dozen; finding none means the extraction broke.
    assert!(checked > 20, "only {checked} command lines found");
}

/// Inline code that starts with `meterhook` but is a log line, not a command.
const LOG_LINES: [&str; 2] = ["meterhook listening on", "meterhook stopped"];

#[test]
fn every_inline_command_names_subcommands_and_flags_that_exist() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, text) in documents() {
        let (_, spans) = shell_lines_and_spans(&name, &text);
        for span in spans {
            let Some(rest) = span.text.strip_prefix("meterhook ") else {
                continue;
            };
            if LOG_LINES.iter().any(|l| span.text.starts_with(l)) {
                continue;
            }
            checked += 1;
            if let Err(e) = inline_command_exists(rest) {
                failures.push(format!("{}: `{}`: {e}", span.at, span.text));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inline commands the binary does not have:\n{}",
        failures.join("\n")
    );
    assert!(checked > 20, "only {checked} inline commands found");
}

/// Walks the subcommands named at the start of `text`, then checks every `--flag` in it against
/// the last one's arguments (and the global ones).
fn inline_command_exists(text: &str) -> Result<(), String> {
    let root = Cli::command();
    let globals: Vec<String> = root
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .chain(["help".to_owned(), "version".to_owned()])
        .collect();
    let mut command = &root;
    let mut tokens = text
        .split(|c: char| c.is_whitespace() || "[]()|\\".contains(c))
        .filter(|t| !t.is_empty())
        .peekable();
    let mut path = vec!["meterhook".to_owned()];
    while let Some(t) = tokens.peek() {
        if *t == "--config" {
            tokens.next();
            tokens.next();
            continue;
        }
        if t.starts_with('-') {
            break;
        }
        match command.find_subcommand(t) {
            Some(sub) => {
                path.push((*t).to_owned());
                command = sub;
                tokens.next();
            }
            None if command.has_subcommands() && path.len() == 1 => {
                return Err(format!("no subcommand {t}"));
            }
            None if command.has_subcommands() && command.get_positionals().next().is_none() => {
                return Err(format!("{} has no subcommand {t}", path.join(" ")));
            }
            None => break,
        }
    }
    for t in tokens {
        let Some(flag) = t.strip_prefix("--") else {
            continue;
        };
        let flag = flag.split('=').next().unwrap_or(flag);
        if flag.is_empty() || flag == "…" {
            continue;
        }
        let known = command.get_arguments().any(|a| a.get_long() == Some(flag))
            || globals.iter().any(|g| g == flag);
        if !known {
            return Err(format!("{} has no --{flag}", path.join(" ")));
        }
    }
    Ok(())
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // A flag the binary lacks fails both checks.
    assert!(Cli::try_parse_from(["meterhook", "events", "list", "--no-such-flag"]).is_err());
    assert!(inline_command_exists("events list [--no-such-flag]").is_err());
    assert!(inline_command_exists("vehicle list").is_err());
    assert!(inline_command_exists("vehicles lists").is_err());
    assert!(inline_command_exists("prune [--older-than 30d] [--batch N] [--json]").is_ok());
    // The shell reading finds the invocations, and only those.
    assert_eq!(
        invocations("DATABASE_URL=x meterhook migrate   # comment"),
        vec![vec!["migrate".to_owned()]]
    );
    assert_eq!(
        invocations(
            "sudo sh -c 'set -a; . /etc/meterhook/meterhook.env; exec /usr/local/bin/meterhook stats --since 24h'"
        ),
        vec![vec!["stats", "--since", "24h"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()]
    );
    assert_eq!(
        invocations("meterhook backup /b/meterhook-$(date +%F).db && journalctl -u meterhook"),
        vec![vec![
            "backup".to_owned(),
            "/b/meterhook-$(date +%F).db".to_owned()
        ]]
    );
    assert_eq!(
        invocations("cargo run --release -p meterhook -- vehicles add <SC> --vehicle-id <APP>"),
        vec![vec!["vehicles", "add", "<SC>", "--vehicle-id", "<APP>"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()]
    );
    assert!(invocations("sqlite3 meterhook-spool.db 'SELECT 1'").is_empty());
    assert_eq!(
        invocations("cd /v && exec runuser -u meterhook -- meterhook --config /c.toml doctor"),
        vec![vec!["--config", "/c.toml", "doctor"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()]
    );
    assert_eq!(concrete("ENTRY_ID"), "1");
    assert_eq!(concrete("<event-id>"), "1");
    assert_eq!(concrete("dead"), "dead");
    assert_eq!(concrete("[--json]"), "--json");
    assert_eq!(concrete("[--limit"), "--limit");
}
