//! No password on a command line: `sync migrate --tables` takes its URLs
//! from variables or files it is told the names of, so `ps` shows none.

mod common;

use std::time::Duration;

use common::{contents, insert_processed, Production, BIN};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Every process's command line as `ps` prints it (or /proc when `ps` is
/// missing: the same text).
fn command_lines(pid: u32) -> String {
    match std::process::Command::new("ps")
        .args(["-ww", "-o", "args=", "-p", &pid.to_string()])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default(),
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn ps_during_sync_migrate_shows_no_password(_: PgPoolOptions, connect: PgConnectOptions) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 20_000).await;
    // A role with a password, so the URLs really carry one.
    let role = format!("sync_ps_{}", uuid::Uuid::new_v4().simple());
    let password = format!("pw{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'"
    ))
    .execute(&working)
    .await
    .unwrap();
    let with_password = |url: &str| {
        let (scheme, rest) = url.split_once("://").unwrap();
        let rest = rest.split_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{role}:{password}@{rest}")
    };
    let from = with_password(&test_support::database_url(&connect));
    let to = with_password(&production.url);
    let file = std::env::temp_dir().join(format!("sync-ps-{}.url", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, format!("{to}\n")).unwrap();

    // Sync's own DATABASE_URL is set as in its container; the copy's ends
    // are the variable and the file named on the command line.
    let working_url = test_support::database_url(&connect);
    let env = [
        ("DATABASE_URL", working_url.as_str()),
        ("OLD_DATABASE_URL", from.as_str()),
    ];
    let mut child = test_support::cli::command(BIN, &env)
        .args([
            "migrate",
            "--tables",
            "processed_data",
            "--batch-size",
            "100",
            "--from-env",
            "OLD_DATABASE_URL",
            "--to-file",
            file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let line = command_lines(child.id());
        if !line.is_empty() {
            seen.push(line);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "sync migrate hangs");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(!seen.is_empty(), "never saw the process");
    assert!(
        seen.iter()
            .any(|l| l.contains("--from-env OLD_DATABASE_URL")),
        "{seen:?}"
    );
    for line in &seen {
        assert!(!line.contains(&password), "ps shows the password: {line}");
    }
    // It did use those URLs: the copy is there.
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    std::fs::remove_file(file).unwrap();
    production.drop_database().await;
    sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&working)
        .await
        .unwrap();
}
