//! The cutover runbook of docs/sync.md, step by step with the real
//! binaries, while the old production keeps issuing and revoking tokens:
//! the new production ends with the same `api_tokens` (revocations
//! included), `cutover-check` fails when the final catch-up is skipped, and
//! a token issued on the new database after the switch works.

mod common;

use common::{contents, insert_processed, Production, BIN};
use domain::token::Token;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use test_support::cli::{lines, run};

const SECRET_KEY: &str = "cutover-test-secret-key-0123456789abcdef";

/// `api tokens ...` against `database`, as an operator runs it.
fn api(database: &str, args: &[&str]) -> Vec<String> {
    let api = test_support::workspace_binary("api");
    let mut all = vec!["tokens"];
    all.extend_from_slice(args);
    let out = run(
        &api,
        &all,
        &[("DATABASE_URL", database), ("SECRET_KEY", SECRET_KEY)],
    );
    let printed = lines(&out);
    assert!(out.status.success(), "api {args:?}: {printed:?}");
    printed
}

/// Issues one token on `database`; returns it in clear.
fn issue(database: &str, description: &str) -> Token {
    let printed = api(database, &["issue", "--description", description]);
    let token = printed
        .iter()
        .find_map(|l| Token::parse(l.trim()).ok())
        .unwrap_or_else(|| panic!("no token printed: {printed:?}"));
    token
}

fn sync(args: &[&str], env: &[(&str, &str)]) -> (bool, Vec<String>) {
    let out = run(BIN, args, env);
    (out.status.success(), lines(&out))
}

/// What a request's token resolves to on `pool`: valid or not.
async fn valid_on(pool: &PgPool, token: &Token) -> bool {
    let hash = token.hash(SECRET_KEY.as_bytes());
    db::tokens::find_by_hash(pool, &hash)
        .await
        .unwrap()
        .is_some_and(|grant| grant.is_valid_at(chrono::Utc::now()))
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_cutover_runbook_carries_every_token_written_on_the_old_production(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let working_url = test_support::database_url(&connect);
    let old = Production::create(&connect).await;
    insert_processed(&working, 0, 60).await;
    // Before the cutover: sync serves the old production, which issues tokens.
    let to_old = [
        ("DATABASE_URL", working_url.as_str()),
        ("TARGET_DATABASE_URL", old.url.as_str()),
    ];
    let (ok, out) = sync(&["push"], &to_old);
    assert!(ok, "{out:?}");
    let kept = issue(&old.url, "kept");
    let revoked_during = issue(&old.url, "revoked during the cutover");
    let revoked_before = issue(&old.url, "revoked before");
    api(&old.url, &["revoke", revoked_before.prefix()]);

    // 1. The new database with the schema.
    let new = Production::create(&connect).await;
    // Run where sync runs (its DATABASE_URL is the working database).
    let both = [
        ("DATABASE_URL", working_url.as_str()),
        ("OLD_DATABASE_URL", old.url.as_str()),
        ("NEW_DATABASE_URL", new.url.as_str()),
    ];
    // 2. Full copy while the old one serves.
    let copy = [
        "migrate",
        "--tables",
        "processed_data,api_tokens",
        "--from-env",
        "OLD_DATABASE_URL",
        "--to-env",
        "NEW_DATABASE_URL",
    ];
    let (ok, out) = sync(&copy, &both);
    assert!(ok, "{out:?}");

    // The old production keeps working meanwhile: a token is revoked, one
    // issued, one used; the working side changes and sync still pushes to it.
    api(&old.url, &["revoke", revoked_during.prefix()]);
    let issued_during = issue(&old.url, "issued during the cutover");
    sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE description = 'kept'")
        .execute(&old.pool)
        .await
        .unwrap();
    insert_processed(&working, 60, 5).await;
    let (ok, out) = sync(&["push"], &to_old);
    assert!(ok, "{out:?}");

    // Skipping the final catch-up: the check before switching refuses.
    let (ok, out) = sync(
        &[
            "cutover-check",
            "--from-env",
            "OLD_DATABASE_URL",
            "--to-env",
            "NEW_DATABASE_URL",
        ],
        &both,
    );
    assert!(!ok, "cutover-check passed without the catch-up: {out:?}");
    for table in ["api_tokens", "processed_data"] {
        assert!(
            out.iter()
                .any(|l| l.contains(&format!("{table}: DIFFERENT"))),
            "{table} not named: {out:?}"
        );
    }

    // 3. Writes stop (api and sync on the old side stopped); 4. the final
    // catch-up walks every row of the tables production writes.
    let catch_up = [
        "migrate",
        "--tables",
        "processed_data,api_tokens",
        "--from-start",
        "--from-env",
        "OLD_DATABASE_URL",
        "--to-env",
        "NEW_DATABASE_URL",
    ];
    let (ok, out) = sync(&catch_up, &both);
    assert!(ok, "{out:?}");
    // 5. Every table, both sides: identical.
    let (ok, out) = sync(
        &[
            "cutover-check",
            "--from-env",
            "OLD_DATABASE_URL",
            "--to-env",
            "NEW_DATABASE_URL",
        ],
        &both,
    );
    assert!(ok, "{out:?}");
    assert!(
        out.iter()
            .any(|l| l.contains("api_tokens: identical (4 rows")),
        "{out:?}"
    );
    let tokens = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT format('%s %s %s revoked=%s used=%s', id, token_prefix, description,
                           revoked_at IS NOT NULL, last_used_at IS NOT NULL)
             FROM api_tokens ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let before = tokens(old.pool.clone()).await;
    let after = tokens(new.pool.clone()).await;
    eprintln!(
        "api_tokens on the old production:\n  {}",
        before.join("\n  ")
    );
    eprintln!(
        "api_tokens on the new production:\n  {}",
        after.join("\n  ")
    );
    assert_eq!(before, after);
    assert_eq!(
        contents(&old.pool, "api_tokens", "id").await,
        contents(&new.pool, "api_tokens", "id").await
    );

    // 6. The switch: sync pushes to the new database (its marks belong to
    // the old one, so the first push is full), the api reads it.
    let to_new = [
        ("DATABASE_URL", working_url.as_str()),
        ("TARGET_DATABASE_URL", new.url.as_str()),
    ];
    let (ok, out) = sync(&["push"], &to_new);
    assert!(ok, "{out:?}");
    assert!(
        out.iter()
            .any(|l| l.contains("full push (its marks belong to production")),
        "{out:?}"
    );
    assert_eq!(
        contents(&new.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    for (token, valid) in [
        (&kept, true),
        (&issued_during, true),
        (&revoked_during, false),
        (&revoked_before, false),
    ] {
        assert_eq!(
            valid_on(&new.pool, token).await,
            valid,
            "{}",
            token.prefix()
        );
    }
    // A token issued on the new database gets an id past the copied ones.
    let fresh = issue(&new.url, "issued after the switch");
    assert!(valid_on(&new.pool, &fresh).await);
    eprintln!(
        "issued on the new production after the switch:\n  {}",
        tokens(new.pool.clone()).await.join("\n  ")
    );
    old.drop_database().await;
    new.drop_database().await;
}
