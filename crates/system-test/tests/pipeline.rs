//! The whole pipeline as separate processes, checked after every hop:
//!
//! che168-sim (the upstream) -> `loader initial`, `loader daily` -> raw_data
//! -> `normalizer run` -> processed_data -> `sync push` to a second
//! (production) database -> `api serve` on production -> nginx running the
//! repo's nginx/ configuration -> a client holding a token from `api tokens
//! issue`. That is the users' two-database topology: the pipeline writes to
//! the working database, the public api reads production. What each hop must produce comes from the simulator's catalogue
//! (its oracle of raw_data, written apart from the loader) and the domain's
//! normalisation rules. Each service runs as its own database role
//! (migration 0015), with a password, as compose runs it; migrations run as
//! the owner.

use std::collections::BTreeMap;
use std::time::Duration;

use che168_sim::{ExpectedRow, SimConfig};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use test_support::cli::{lines, run, Running};
use test_support::nginx::{binary_or_skip, free_port, Nginx};
use test_support::workspace_binary;

const SECRET: &str = "system-test-secret-key-of-at-least-32-chars";

/// One simulated day (today, UTC) over a small catalogue, so that the daily
/// update adds, changes and removes listings the initial load stored. The
/// simulator process is started with the same values (`che168-sim serve`
/// also ends its days today), so this is what it serves.
fn simulation() -> SimConfig {
    let defaults = SimConfig::default();
    SimConfig {
        listings: 240,
        days: 1,
        first_day: defaults.first_day + chrono::Duration::days(i64::from(defaults.days) - 1),
        changes_per_day: 80,
        ..defaults
    }
}

/// `url` logged in as `role` with a password: the one this test gives each
/// service role first (roles belong to the server, as in compose, where
/// `migrate` sets them).
fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{role}:{}@{host}", role_password(role))
}

fn role_password(role: &str) -> String {
    format!("system-test-{role}")
}

async fn set_role_passwords(pool: &PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    for role in settings::SERVICE_ROLES {
        db::roles::set_password(&mut conn, role.role, &role_password(role.role))
            .await
            .unwrap();
    }
}

/// Runs a one-shot subcommand of a service binary; it must exit 0.
fn run_ok(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let out = run(&workspace_binary(binary), args, env);
    assert!(
        out.status.success(),
        "{binary} {args:?} failed: {:?}",
        lines(&out)
    );
    lines(&out)
}

#[derive(Debug, PartialEq)]
struct RawRow {
    upstream_id: i64,
    change_type: String,
    data: Value,
    active: bool,
    source: String,
}

async fn raw_rows(pool: &PgPool) -> BTreeMap<String, RawRow> {
    let rows: Vec<(String, Option<i64>, String, Value, i32, String)> = sqlx::query_as(
        "SELECT inner_id, upstream_id, change_type, data, active_status, source FROM raw_data",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, upstream_id, change_type, data, status, source)| {
            let row = RawRow {
                upstream_id: upstream_id.unwrap_or(-1),
                change_type,
                data,
                active: status == 0,
                source,
            };
            (id, row)
        })
        .collect()
}

fn expected_raw(expected: &BTreeMap<String, ExpectedRow>) -> BTreeMap<String, RawRow> {
    expected
        .iter()
        .map(|(id, row)| {
            let raw = RawRow {
                upstream_id: i64::try_from(row.upstream_id).unwrap(),
                change_type: row.change_type.as_str().to_owned(),
                data: Value::Object(row.data.clone()),
                active: row.active,
                source: row.source.to_owned(),
            };
            (id.clone(), raw)
        })
        .collect()
}

/// Hop 1: what raw_data holds is what the upstream served, row for row.
async fn assert_raw_data(pool: &PgPool, expected: &BTreeMap<String, ExpectedRow>, after: &str) {
    let actual = raw_rows(pool).await;
    let expected = expected_raw(expected);
    assert_eq!(actual.len(), expected.len(), "raw_data rows after {after}");
    for (id, row) in &expected {
        assert_eq!(actual.get(id), Some(row), "raw_data row {id} after {after}");
    }
}

/// processed_data as (record, is_active) by inner_id.
async fn processed_rows(pool: &PgPool) -> BTreeMap<String, (Value, bool)> {
    let rows: Vec<(String, Value, bool)> =
        sqlx::query_as("SELECT inner_id, record, is_active FROM processed_data")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, record, active)| (id, (record, active)))
        .collect()
}

/// The production database: a second, empty database on the same server,
/// given its schema by a service binary's `migrate` as an operator would.
struct Production {
    url: String,
    pool: PgPool,
    name: String,
    admin: PgConnectOptions,
}

impl Production {
    async fn create(working: &PgConnectOptions) -> Self {
        let name = format!("production_{}", std::process::id());
        let admin = working.clone().database("postgres");
        let mut conn = PgConnection::connect_with(&admin).await.unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
        let options = working.clone().database(&name);
        let url = test_support::database_url(&options);
        run_ok("api", &["migrate"], &[("DATABASE_URL", url.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        Self {
            url,
            pool,
            name,
            admin,
        }
    }

    async fn drop_database(self) {
        self.pool.close().await;
        let mut conn = PgConnection::connect_with(&self.admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn listings_flow_from_the_upstream_through_loader_normaliser_api_and_nginx(pool: PgPool) {
    let Some(nginx_binary) = binary_or_skip() else {
        return;
    };
    let owner_url = test_support::database_url(&pool.connect_options());
    set_role_passwords(&pool).await;
    let loader_url = as_role(&owner_url, "carfeed_loader");
    let normalizer_url = as_role(&owner_url, "carfeed_normalizer");
    let sync_url = as_role(&owner_url, "carfeed_sync");
    let config = simulation();
    let catalogue = config.catalogue();
    let sim_bind = format!("127.0.0.1:{}", free_port());
    let listings = config.listings.to_string();
    let changes = config.changes_per_day.to_string();
    let mut sim = Running::start(
        &workspace_binary("che168-sim"),
        &[
            "serve",
            "--bind",
            &sim_bind,
            "--listings",
            &listings,
            "--days",
            "1",
            "--changes-per-day",
            &changes,
        ],
        &[],
    );
    sim.wait_for_line("Simulating", Duration::from_secs(30));
    let base_url = format!("http://{sim_bind}/api/v2/che168");
    let env = [
        ("DATABASE_URL", loader_url.as_str()),
        ("CHE168_BASE_URL", base_url.as_str()),
        ("CARFEED__UPSTREAM__MAX_REQUESTS_PER_SECOND", "500"),
        ("CARFEED__UPSTREAM__RETRY__INTERVAL", "100ms"),
    ];

    // Hop 1: upstream -> loader -> raw_data.
    run_ok("loader", &["initial"], &env);
    assert_raw_data(&pool, &catalogue.expected_rows(0), "loader initial").await;
    run_ok("loader", &["daily"], &env);
    let expected = catalogue.expected_rows(1);
    assert_raw_data(&pool, &expected, "loader daily").await;
    assert!(
        expected.values().any(|r| !r.active) && expected.values().any(|r| r.active),
        "the simulated day removes some listings and keeps others"
    );

    // Hop 2: raw_data -> normalizer -> processed_data, by the domain's rules.
    run_ok(
        "normalizer",
        &["run"],
        &[("DATABASE_URL", normalizer_url.as_str())],
    );
    let processed = processed_rows(&pool).await;
    let mut served = BTreeMap::new();
    let mut removed = Vec::new();
    for (id, row) in &expected {
        match domain::normalize::normalize(id, &Value::Object(row.data.clone())) {
            Ok(listing) => {
                let record = serde_json::to_value(listing).unwrap();
                assert_eq!(
                    processed.get(id),
                    Some(&(record.clone(), row.active)),
                    "processed_data row {id}"
                );
                if row.active {
                    served.insert(id.clone(), record);
                } else {
                    removed.push(id.clone());
                }
            }
            Err(_) => assert!(!processed.contains_key(id), "{id} cannot be normalised"),
        }
    }
    let unprocessed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw_data WHERE NOT is_processed AND normalize_error IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unprocessed, 0, "rows left in the normaliser's queue");
    assert!(
        served.len() > 200 && !removed.is_empty(),
        "{}",
        served.len()
    );

    // Hop 3: working processed_data -> sync push -> production, row for
    // row; then verify agrees, and a second push finds nothing to send.
    let production = Production::create(&pool.connect_options()).await;
    let production_sync_url = as_role(&production.url, "carfeed_sync");
    let sync_env = [
        ("DATABASE_URL", sync_url.as_str()),
        ("TARGET_DATABASE_URL", production_sync_url.as_str()),
    ];
    run_ok("sync", &["push"], &sync_env);
    assert!(
        processed_rows(&production.pool).await == processed,
        "production's processed_data differs from the working database's"
    );
    run_ok("sync", &["verify"], &sync_env);
    let dry_run = run_ok("sync", &["push", "--dry-run"], &sync_env).join("\n");
    assert!(
        dry_run.contains("processed_data: 0 changed rows read"),
        "a second push would send rows: {dry_run}"
    );

    // Hop 4: production processed_data -> api -> nginx -> a client with a token.
    let api_bind = format!("127.0.0.1:{}", free_port());
    let production_api_url = as_role(&production.url, "carfeed_api");
    let api_env = [
        ("DATABASE_URL", production_api_url.as_str()),
        ("SECRET_KEY", SECRET),
        ("API_BIND", api_bind.as_str()),
        ("CARFEED__API__INITIAL_TOKENS", "0"),
        ("CARFEED__API__TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let api_binary = workspace_binary("api");
    let mut api = Running::start(&api_binary, &["serve"], &api_env);
    api.wait_for_line("API listening", Duration::from_secs(30));
    let token = run_ok(
        "api",
        &["tokens", "issue", "--description", "system test"],
        &api_env,
    )
    .into_iter()
    .find(|l| domain::token::Token::parse(l).is_ok())
    .expect("api tokens issue prints a token");
    let nginx = Nginx::start(&nginx_binary, api_bind.parse().unwrap());
    let client = reqwest::Client::new();

    let mut seen = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let answer = client
            .get(nginx.url(&format!("/api/v1/offers?limit=100{cursor}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        for item in body["items"].as_array().unwrap() {
            let id = item["inner_id"].as_str().unwrap().to_owned();
            assert!(seen.insert(id, item.clone()).is_none(), "an offer repeats");
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), served.len(), "offers served through nginx");
    assert!(seen == served, "the offers served differ from the records");
    // /stats as the api's role: counts through the owner's functions.
    let stats = client
        .get(nginx.url("/api/v1/stats"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), 200, "{:?}", stats.text().await);
    let gone = client
        .get(nginx.url(&format!("/api/v1/offers/{}", removed[0])))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "a listing removed upstream is served");
    let refused = client
        .get(nginx.url("/api/v1/offers"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    api.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(api.wait_exit(Duration::from_secs(15)).success());
    sim.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(sim.wait_exit(Duration::from_secs(15)).success());
    production.drop_database().await;
}
