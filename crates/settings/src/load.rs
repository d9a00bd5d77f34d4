//! Reading the layers and turning them into one validated `Settings`.

use std::collections::HashMap;
use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};

use crate::{FileSettings, Secrets, Settings, SettingsError};

/// The defaults: the repository's config.yaml, built into every binary.
const DEFAULTS: &str = include_str!("../../../config.yaml");

/// Prefix of environment overrides: `CARFEED__NORMALIZER__BATCH_SIZE`.
const ENV_PREFIX: &str = "CARFEED";

/// Fixed environment names the compose files use, and the key each sets.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("LOG_DIR", "log.dir"),
    ("API_BIND", "api.bind"),
    ("CHE168_BASE_URL", "upstream.base_url"),
];

/// A snapshot of environment variables. Tests build one by hand instead of
/// touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The variable's value, with an empty string counted as unset.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// Loads settings from the process environment (after `.env`, which the
/// caller reads first).
pub fn load() -> Result<Settings, SettingsError> {
    load_from(&Env::from_process())
}

pub fn load_from(env: &Env) -> Result<Settings, SettingsError> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Yaml));

    match env.non_empty("CONFIG_FILE") {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(SettingsError::new(format!(
                    "CONFIG_FILE points at {}, which is not a readable file",
                    path.display()
                )));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Yaml));
        }
        None => {
            builder =
                builder.add_source(File::new("config.yaml", FileFormat::Yaml).required(false));
        }
    }

    let overrides: HashMap<String, String> = env
        .0
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("api.cors_origins")
            .with_list_parse_key("api.trusted_proxies")
            .with_list_parse_key("worker.keep_headers")
            .source(Some(overrides)),
    );
    for (name, key) in SHORT_NAMES {
        if let Some(value) = env.non_empty(name) {
            builder = builder
                .set_override(*key, value)
                .map_err(|e| SettingsError::new(format!("{name}: {e}")))?;
        }
    }

    let merged = builder
        .build()
        .map_err(|e| SettingsError::new(one_line(&e.to_string())))?;
    let file: FileSettings = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = e.path().to_string();
        let error = e.into_inner();
        if path.is_empty() || path == "." {
            return SettingsError::new(one_line(&error.to_string()));
        }
        match sentence(&error) {
            // Our own (`typed`): "normalizer.batch_size must be between ...".
            Some(sentence) => SettingsError::new(format!("{path} {}", one_line(sentence))),
            None => SettingsError::new(format!("{path}: {}", one_line(&error.to_string()))),
        }
    })?;

    file.database.validate()?;
    file.upstream.validate()?;
    file.loader.validate()?;
    file.normalizer.validate()?;
    file.api.validate()?;
    file.sync.validate()?;
    file.worker.validate()?;
    file.status.validate()?;
    // The loader's run lock holds one connection for the whole run.
    if file.loader.write_connections.get() >= file.database.max_connections.get() as usize {
        return Err(SettingsError::new(format!(
            "loader.write_connections ({}) must be below database.max_connections ({})",
            file.loader.write_connections, file.database.max_connections
        )));
    }

    Ok(Settings {
        log: file.log,
        database: file.database,
        upstream: file.upstream,
        loader: file.loader,
        normalizer: file.normalizer,
        api: file.api,
        sync: file.sync,
        worker: file.worker,
        status: file.status,
        secrets: Secrets::from_env(env)?,
    })
}

/// The sentence of a `typed` deserialiser ("must be ..."), without the
/// "for key `...`" the config crate adds: `load` names the key itself.
fn sentence(error: &config::ConfigError) -> Option<&str> {
    match error {
        config::ConfigError::At { error, .. } => sentence(error),
        config::ConfigError::Message(message) if message.starts_with("must ") => {
            Some(message.as_str())
        }
        _ => None,
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        // Point CONFIG_FILE at the defaults so a config.yaml in the test's
        // working directory cannot leak in.
        let mut all = vec![("CONFIG_FILE".to_owned(), defaults_path())];
        all.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Env::from_pairs(all)
    }

    fn defaults_path() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.yaml").to_owned()
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn the_shipped_config_yaml_is_valid_and_gives_the_spec_defaults() {
        let settings = load_from(&env(&[])).unwrap();
        assert_eq!(settings.normalizer.batch_size, 200);
        assert_eq!(settings.loader.write_connections.get(), 2);
        assert_eq!(settings.upstream.retry.max_attempts.get(), 20);
        assert_eq!(settings.upstream.retry.interval.as_secs(), 12 * 60);
        assert_eq!(settings.upstream.retry.max_elapsed.as_secs(), 4 * 3600);
        assert_eq!(settings.log.retention_days, 7);
        assert_eq!(settings.api.bind.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.sync.batch_size.get(), 1000);
        assert_eq!(settings.sync.target_max_connections.get(), 2);
        assert_eq!(settings.sync.push_tables[0].name, "processed_data");
        assert_eq!(settings.sync.push_tables[0].key, ["inner_id"]);
        assert!(settings.sync.pull_tables.is_empty());
    }

    #[test]
    fn an_environment_variable_overrides_a_config_yaml_key() {
        let settings = load_from(&env(&[
            ("CARFEED__NORMALIZER__BATCH_SIZE", "500"),
            ("CARFEED__UPSTREAM__RETRY__INTERVAL", "250ms"),
        ]))
        .unwrap();
        assert_eq!(settings.normalizer.batch_size, 500);
        assert_eq!(settings.upstream.retry.interval.as_millis(), 250);
    }

    #[test]
    fn fixed_short_names_override_their_keys() {
        let settings = load_from(&env(&[
            ("API_BIND", "127.0.0.1:9999"),
            ("LOG_DIR", "/var/log/carfeed"),
            ("CHE168_BASE_URL", "http://127.0.0.1:8090/api/v2/che168"),
        ]))
        .unwrap();
        assert_eq!(settings.api.bind.to_string(), "127.0.0.1:9999");
        assert_eq!(settings.log.dir.unwrap().to_str(), Some("/var/log/carfeed"));
        assert_eq!(
            settings.upstream.base_url.as_str(),
            "http://127.0.0.1:8090/api/v2/che168"
        );
    }

    #[test]
    fn an_out_of_range_value_is_rejected_naming_its_key() {
        let err = load_from(&env(&[("CARFEED__NORMALIZER__BATCH_SIZE", "-5")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: normalizer.batch_size must be between 1 and 10000, got -5"
        );
    }

    #[test]
    fn more_loader_write_connections_than_the_pool_holds_is_rejected_naming_both_keys() {
        let err = load_from(&env(&[
            ("CARFEED__LOADER__WRITE_CONNECTIONS", "4"),
            ("CARFEED__DATABASE__MAX_CONNECTIONS", "4"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: loader.write_connections (4) must be below database.max_connections (4)"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_rejected_naming_its_key() {
        let err = load_from(&env(&[("CARFEED__NORMALIZER__BATCH_SIZE", "lots")])).unwrap_err();
        let line = err.to_string();
        assert!(line.starts_with("config: normalizer.batch_size"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn an_invalid_duration_is_rejected_naming_its_key() {
        let err = load_from(&env(&[("CARFEED__UPSTREAM__RETRY__INTERVAL", "soon")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config: upstream.retry.interval"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_in_config_yaml_is_rejected_naming_it() {
        let file = config_file("normalizer:\n  batch_sise: 10\n");
        let err = load_from(&Env::from_pairs([(
            "CONFIG_FILE",
            file.path().to_str().unwrap(),
        )]))
        .unwrap_err();
        let line = err.to_string();
        assert!(line.starts_with("config: normalizer"), "{line}");
        assert!(line.contains("batch_sise"), "{line}");
    }

    #[test]
    fn a_config_file_only_needs_the_keys_it_changes() {
        let file = config_file("log:\n  format: json\n");
        let settings = load_from(&Env::from_pairs([(
            "CONFIG_FILE",
            file.path().to_str().unwrap(),
        )]))
        .unwrap();
        assert_eq!(settings.log.format, crate::LogFormat::Json);
        assert_eq!(settings.normalizer.batch_size, 200);
    }

    #[test]
    fn a_missing_config_file_is_rejected_naming_config_file() {
        let err = load_from(&Env::from_pairs([(
            "CONFIG_FILE",
            "/nonexistent/carfeed.yaml",
        )]))
        .unwrap_err();
        assert!(err.to_string().starts_with("config: CONFIG_FILE"), "{err}");
    }

    #[test]
    fn database_url_is_built_from_db_parts_when_unset() {
        let settings = load_from(&env(&[
            ("DB_HOST", "db"),
            ("DB_USER", "carfeed"),
            ("DB_PASSWORD", "p@ss word"),
            ("DB_NAME", "carfeed"),
        ]))
        .unwrap();
        assert_eq!(
            settings.secrets.database_url().unwrap(),
            "postgres://carfeed:p%40ss%20word@db:5432/carfeed"
        );
    }

    #[test]
    fn a_missing_database_url_names_the_variable() {
        let settings = load_from(&env(&[])).unwrap();
        let err = settings.secrets.database_url().unwrap_err();
        assert!(err
            .to_string()
            .starts_with("config: DATABASE_URL is not set"));
    }

    #[test]
    fn trusted_proxies_are_parsed_and_a_bad_one_is_rejected_naming_its_key() {
        let settings = load_from(&env(&[(
            "CARFEED__API__TRUSTED_PROXIES",
            "172.16.0.0/12,127.0.0.1",
        )]))
        .unwrap();
        let ranges = &settings.api.trusted_proxies;
        assert!(ranges[0].contains("172.18.0.5".parse().unwrap()));
        assert!(!ranges[0].contains("172.32.0.1".parse().unwrap()));
        assert!(ranges[1].contains("::ffff:127.0.0.1".parse().unwrap()));
        let err = load_from(&env(&[("CARFEED__API__TRUSTED_PROXIES", "nginx")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config: api.trusted_proxies[0]"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let settings = load_from(&env(&[
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("CHE168_API_KEY", "topsecretkey"),
        ]))
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"));
        assert!(!debug.contains("topsecretkey"));
    }
}
