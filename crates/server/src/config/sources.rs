//! Where settings' text comes from: the optional configuration file, `.env.local` / `.env`, and
//! the environment; and, for `doctor`, which of them set each one.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{ConfigError, Declared, SETTINGS};

/// The default configuration file, read when present in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "meterhook.toml";

/// The environment files, the first winning.
const ENV_FILES: [&str; 2] = [".env.local", ".env"];

/// The variables the process was started with (see [`load_env_files`]).
static INHERITED: OnceLock<HashSet<String>> = OnceLock::new();

/// Loads `.env.local`, then `.env`, from the working directory (not its parents) into the
/// environment; they fill in only what the environment does not set, so `.env.local` wins over
/// `.env` and the real environment wins over both. Safe to call more than once.
pub fn load_env_files() -> Result<(), ConfigError> {
    // Which variables the process was given, before the files add theirs: `doctor` tells them
    // apart.
    INHERITED.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect()
    });
    for file in ENV_FILES {
        match dotenvy::from_path(Path::new(file)) {
            Ok(()) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::Load(format!("{file}: {e}"))),
        }
    }
    Ok(())
}

/// The configuration file to read, and whether it must exist.
fn config_file(config_path: Option<&Path>) -> (PathBuf, bool) {
    match config_path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    }
}

/// Every value that a source sets, by key, as the text it was written as; a key that is not a
/// setting stops the start. Call after [`load_env_files`].
pub(super) fn read(config_path: Option<&Path>) -> Result<BTreeMap<String, String>, ConfigError> {
    let load = |e: config::ConfigError| ConfigError::Load(e.to_string());
    let (file, required) = config_file(config_path);
    let mut builder = config::Config::builder()
        .add_source(config::File::from(file.as_path()).required(required))
        // Without `try_parsing` every variable stays the text it was written as: with it,
        // `METERHOOK_API_TOKEN=000123` became the number 123, and then the token "123".
        .add_source(config::Environment::with_prefix("METERHOOK").prefix_separator("_"));
    for setting in SETTINGS.iter().filter(|s| s.var != s.prefixed_var()) {
        match std::env::var(setting.var) {
            Ok(value) => builder = builder.set_override(setting.key, value).map_err(load)?,
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::Invalid {
                    name: setting.var,
                    reason: "is not valid UTF-8".to_owned(),
                });
            }
        }
    }
    written(builder.build().map_err(load)?)
}

/// The values `config` holds, by key, as text; a key that is not a setting is refused.
pub(super) fn written(config: config::Config) -> Result<BTreeMap<String, String>, ConfigError> {
    let table: BTreeMap<String, config::Value> = config
        .try_deserialize()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        if !SETTINGS.iter().any(|s| s.key == key) {
            let known: Vec<String> = SETTINGS.iter().map(|s| format!("`{}`", s.key)).collect();
            return Err(ConfigError::Load(format!(
                "unknown field `{key}`, expected one of {}",
                known.join(", ")
            )));
        }
        let text = value
            .into_string()
            .map_err(|e| ConfigError::Load(format!("{key}: {e}")))?;
        values.insert(key, text);
    }
    Ok(values)
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// Nothing set it.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// A line in `.env.local` or `.env`.
    EnvFile(&'static str),
    /// The process's environment.
    Environment,
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Default => f.write_str("default"),
            ValueSource::File(path) => write!(f, "file {}", path.display()),
            ValueSource::EnvFile(name) => f.write_str(name),
            ValueSource::Environment => f.write_str("environment"),
        }
    }
}

/// Where each setting of [`SETTINGS`] came from, by variable name, following the precedence of
/// [`super::Settings::load`]: environment, `.env.local`, `.env`, file, default. Call after
/// [`load_env_files`].
pub fn origins(config_path: Option<&Path>) -> Vec<(&'static str, ValueSource)> {
    let inherited = INHERITED.get();
    let env_files: Vec<(&'static str, HashSet<String>)> = ENV_FILES
        .iter()
        .map(|&file| {
            let names = dotenvy::from_path_iter(Path::new(file))
                .map(|lines| lines.filter_map(Result::ok).map(|(k, _)| k).collect())
                .unwrap_or_default();
            (file, names)
        })
        .collect();
    let (file, _) = config_file(config_path);
    let in_file = config::Config::builder()
        .add_source(config::File::from(file.as_path()).required(false))
        .build()
        .ok();
    SETTINGS
        .iter()
        .map(|setting: &Declared| {
            // Every setting can also be given as METERHOOK_<KEY>; the plain name wins.
            let prefixed = setting.prefixed_var();
            let names = [setting.var, prefixed.as_str()];
            let origin = if inherited.is_some_and(|set| names.iter().any(|n| set.contains(*n))) {
                ValueSource::Environment
            } else if let Some((name, _)) = env_files
                .iter()
                .find(|(_, set)| names.iter().any(|n| set.contains(*n)))
            {
                ValueSource::EnvFile(name)
            } else if in_file
                .as_ref()
                .is_some_and(|c| c.get::<config::Value>(setting.key).is_ok())
            {
                ValueSource::File(file.clone())
            } else {
                ValueSource::Default
            };
            (setting.var, origin)
        })
        .collect()
}
