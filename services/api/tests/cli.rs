//! The `api` binary as an operator runs it: start-up checks, SIGTERM, the
//! first-start token file and `api tokens issue|list|revoke`.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use test_support::cli::{lines, run, Running};

const BIN: &str = env!("CARGO_BIN_EXE_api");
const SECRET: &str = "cli-test-secret-key-of-at-least-32-chars";

test_support::service_cli_tests!(
    env!("CARGO_BIN_EXE_api"),
    ["serve"],
    "API listening",
    [
        ("SECRET_KEY", "cli-test-secret-key-of-at-least-32-chars"),
        ("API_BIND", "127.0.0.1:0"),
        ("CARFEED__API__INITIAL_TOKENS", "0")
    ]
);

fn migrated(options: &PgConnectOptions) -> String {
    let url = test_support::database_url(options);
    let out = run(BIN, &["migrate"], &[("DATABASE_URL", &url)]);
    assert!(out.status.success(), "{out:?}");
    url
}

#[sqlx::test(migrations = false)]
async fn serve_without_a_secret_key_exits_2_naming_it(_: PgPoolOptions, options: PgConnectOptions) {
    let url = migrated(&options);
    let out = run(
        BIN,
        &["serve"],
        &[("DATABASE_URL", &url), ("SECRET_KEY", "short")],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("SECRET_KEY must be at least 32 characters"),
        "{lines:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn the_first_serve_writes_twenty_tokens_to_a_file_and_logs_only_where(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = migrated(&options);
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("SECRET_KEY", SECRET),
        ("API_BIND", "127.0.0.1:0"),
        ("CARFEED__API__TOKEN_FILE_DIR", dir_text.as_str()),
    ];
    let mut service = Running::start(BIN, &["serve"], &env);
    let line = service.wait_for_line("Issued 20 API tokens", Duration::from_secs(20));
    assert!(line.contains(&dir_text), "{line}");
    service.wait_for_line("API listening", Duration::from_secs(20));
    service.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(service.wait_exit(Duration::from_secs(15)).success());
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let tokens: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(tokens.len(), 20);
    let output = service.output().join("\n");
    for token in tokens {
        assert!(!output.contains(token), "a token was logged");
    }
}

#[sqlx::test(migrations = false)]
async fn tokens_are_issued_listed_and_revoked_from_the_command_line(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = migrated(&options);
    let env = [("DATABASE_URL", url.as_str()), ("SECRET_KEY", SECRET)];
    let out = run(
        BIN,
        &[
            "tokens",
            "issue",
            "--count",
            "2",
            "--description",
            "frontend staging",
            "--expires-in",
            "30d",
        ],
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    let issued: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(issued.len(), 2);
    assert!(issued
        .iter()
        .all(|t| domain::token::Token::parse(t).is_ok()));

    let list = run(BIN, &["tokens", "list"], &env);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("frontend staging") && l.contains("active"))
            .count(),
        2,
        "{text}"
    );
    assert!(!text.contains(&issued[0]), "list shows a token in clear");

    let revoke = run(BIN, &["tokens", "revoke", &issued[0][..6]], &env);
    assert!(revoke.status.success(), "{revoke:?}");
    let text = String::from_utf8_lossy(&run(BIN, &["tokens", "list"], &env).stdout).to_string();
    assert_eq!(
        text.lines().filter(|l| l.contains("revoked")).count(),
        1,
        "{text}"
    );

    let unknown = run(BIN, &["tokens", "revoke", "zzzzzz"], &env);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        lines(&unknown)
            .iter()
            .any(|l| l.contains("no token has a prefix")),
        "{unknown:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn serve_without_secret_key_or_a_key_file_exits_2_naming_secret_key(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = migrated(&options);
    let out = run(BIN, &["serve"], &[("DATABASE_URL", &url)]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let lines = lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("SECRET_KEY is not set"), "{lines:?}");
}

/// The development stack's opt-in: `SECRET_KEY_FILE` on the secrets volume.
#[sqlx::test(migrations = false)]
async fn with_a_key_file_serve_generates_the_key_and_tokens_issued_from_the_command_line_work(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = migrated(&options);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("secret_key");
    let key_file_text = key_file.to_str().unwrap().to_owned();
    let dir_text = dir.path().to_str().unwrap().to_owned();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("SECRET_KEY_FILE", key_file_text.as_str()),
        ("API_BIND", "127.0.0.1:0"),
        ("CARFEED__API__TOKEN_FILE_DIR", dir_text.as_str()),
        ("CARFEED__API__INITIAL_TOKENS", "0"),
    ];
    let mut service = Running::start(BIN, &["serve"], &env);
    let warning = service.wait_for_line("generated a random key", Duration::from_secs(20));
    assert!(warning.contains("[WARNING]"), "{warning}");
    assert!(warning.contains(&key_file_text), "{warning}");
    let listening = service.wait_for_line("API listening on", Duration::from_secs(20));
    let address = listening.rsplit(' ').next().unwrap().to_owned();
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !service.output().join("\n").contains(key.trim()),
        "the key was logged"
    );

    // `api tokens issue`, as run inside the container, finds the same key.
    let out = run(BIN, &["tokens", "issue"], &env);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let answer = reqwest::Client::new()
        .get(format!("http://{address}/api/v1/offers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    service.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(service.wait_exit(Duration::from_secs(15)).success());
    // A restart reads the kept key instead of making a new one: the token
    // issued before still works.
    let mut again = Running::start(BIN, &["serve"], &env);
    let listening = again.wait_for_line("API listening on", Duration::from_secs(20));
    let address = listening.rsplit(' ').next().unwrap().to_owned();
    let output = again.output().join("\n");
    assert!(!output.contains("generated a random key"), "{output}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    let answer = reqwest::Client::new()
        .get(format!("http://{address}/api/v1/offers"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// Issue 14: a request's log lines carry its request id (nginx's
/// X-Request-Id), and a query cut off by `api.statement_timeout` is a 503.
#[sqlx::test(migrations = false)]
async fn a_request_s_log_lines_carry_its_request_id(_: PgPoolOptions, options: PgConnectOptions) {
    use sqlx::Connection;
    let url = migrated(&options);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("SECRET_KEY", SECRET),
        ("API_BIND", "127.0.0.1:0"),
        ("CARFEED__API__INITIAL_TOKENS", "0"),
        ("CARFEED__API__STATEMENT_TIMEOUT", "300ms"),
    ];
    let out = run(BIN, &["tokens", "issue"], &env);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut service = Running::start(BIN, &["serve"], &env);
    let listening = service.wait_for_line("API listening on", Duration::from_secs(20));
    let address = listening.rsplit(' ').next().unwrap().to_owned();
    let client = reqwest::Client::new();
    let offers = format!("http://{address}/api/v1/offers");
    let answer = client
        .get(&offers)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    let mut lock = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE processed_data IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let answer = client
        .get(&offers)
        .bearer_auth(&token)
        .header("x-request-id", "req-0c8f3e2a")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["x-request-id"], "req-0c8f3e2a");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(body["error"]["request_id"], "req-0c8f3e2a");
    let line = service.wait_for_line("Database unavailable", Duration::from_secs(10));
    assert!(line.contains("req-0c8f3e2a"), "{line}");
    drop(lock);

    service.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(service.wait_exit(Duration::from_secs(15)).success());
}
