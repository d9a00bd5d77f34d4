//! Two real databases for sync's tests: the working one is the test's own
//! `#[sqlx::test]` database; `Production` creates a second, migrated
//! database on the same server and drops it at the end.

#![allow(dead_code)]

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub const BIN: &str = env!("CARGO_BIN_EXE_sync");

/// The production side of a test.
pub struct Production {
    pub pool: PgPool,
    pub url: String,
    name: String,
    admin: PgConnectOptions,
}

impl Production {
    /// A fresh database beside `working`'s, with the schema applied.
    pub async fn create(working: &PgConnectOptions) -> Self {
        let name = format!("sync_target_{}", uuid::Uuid::new_v4().simple());
        let admin = working.clone().database("postgres");
        let mut conn = PgConnection::connect_with(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let options = working.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
            .unwrap();
        db::MIGRATOR.run(&pool).await.unwrap();
        let url = test_support::database_url(&options);
        Self {
            pool,
            url,
            name,
            admin,
        }
    }

    pub async fn drop_database(self) {
        self.pool.close().await;
        let mut conn = PgConnection::connect_with(&self.admin).await.unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// Runs `direction` over the two databases with pools of its own (named
/// `sync-run`, so `tuples_written` can wait for them to go).
pub async fn run(
    direction: db::sync_tables::Direction,
    working: &PgPool,
    production: &Production,
    tables: &[settings::SyncTable],
    options: &sync::RunOptions,
) -> anyhow::Result<Vec<sync::TableReport>> {
    let pool = |url: String| async move {
        let options: PgConnectOptions = url.parse().unwrap();
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options.application_name("sync-run"))
            .await
            .unwrap()
    };
    let working_url = test_support::database_url(&working.connect_options());
    let ends = sync::Ends {
        working: pool(working_url).await,
        production: pool(production.url.clone()).await,
    };
    let result = sync::run::run(
        direction,
        &ends,
        tables,
        options,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    ends.working.close().await;
    ends.production.close().await;
    result
}

pub async fn push(
    working: &PgPool,
    production: &Production,
    options: &sync::RunOptions,
) -> sync::TableReport {
    let mut reports = run(
        db::sync_tables::Direction::Push,
        working,
        production,
        &processed_table(),
        options,
    )
    .await
    .unwrap();
    reports.remove(0)
}

pub fn options(batch_size: usize) -> sync::RunOptions {
    sync::RunOptions {
        batch_size,
        dry_run: false,
        prune: false,
        full: false,
        progress_interval: Duration::from_secs(3600),
    }
}

pub fn processed_table() -> Vec<settings::SyncTable> {
    vec![settings::SyncTable {
        name: "processed_data".into(),
        key: vec!["inner_id".into()],
    }]
}

/// `n` processed_data rows, keys `k00000`.., prices 1000 + i.
pub async fn insert_processed(pool: &PgPool, from: usize, n: usize) {
    let ids: Vec<String> = (from..from + n).map(|i| format!("k{i:06}")).collect();
    sqlx::query(
        "INSERT INTO processed_data (inner_id, raw_id, mark, price, record, is_active)
         SELECT id, 1, 'BMW', 1000 + ordinality, jsonb_build_object('id', id), true
         FROM unnest($1::text[]) WITH ORDINALITY AS t(id, ordinality)",
    )
    .bind(&ids)
    .execute(pool)
    .await
    .unwrap();
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Rows of processed_data as text, key order: what both sides must agree on.
pub async fn contents(pool: &PgPool, table: &str, key: &str) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT (to_jsonb(t) - 'sync_xid')::text FROM {table} t ORDER BY {key}"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Tuples inserted, updated and deleted in `table` so far, once every
/// backend that wrote them has gone (a backend reports on exit).
pub async fn tuples_written(pool: &PgPool, table: &str) -> i64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(
        pool,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sync-run'",
    )
    .await
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "backends still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT coalesce(n_tup_ins + n_tup_upd + n_tup_del, 0) FROM pg_stat_user_tables WHERE relname = $1",
    )
    .bind(table)
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

/// Polls `sql` until it returns `expected` (10 s at most).
pub async fn wait_for(pool: &PgPool, sql: &str, expected: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = count(pool, sql).await;
        if n == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sql}: {n}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP gate in front of a database server: while open, every connection
/// to `port` is forwarded to the server; closed, the port refuses
/// connections and every forwarded one is cut. Plain threads: a test's
/// runtime may be blocked while it waits for a binary's log lines.
pub struct Gate {
    pub port: u16,
    server: (String, u16),
    open: Option<Opened>,
}

/// An open gate: its stop flag, accept thread and forwarded streams.
type Opened = (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
);

impl Gate {
    pub fn new(server: (String, u16)) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            port,
            server,
            open: None,
        }
    }

    pub fn open(&mut self) {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        assert!(self.open.is_none(), "the gate is open already");
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (thread_stop, thread_streams, server) =
            (stop.clone(), streams.clone(), self.server.clone());
        let accept = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(upstream) = std::net::TcpStream::connect(server.clone()) else {
                    continue;
                };
                let mut kept = thread_streams.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(upstream.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        self.open = Some((stop, accept, streams));
    }

    pub fn close(&mut self) {
        let (stop, accept, streams) = self.open.take().expect("the gate is closed already");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        accept.join().unwrap();
        for stream in streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// `url` with its port replaced by the gate's.
    pub fn url(&self, url: &str) -> String {
        let via = url.replace(&format!(":{}/", self.server.1), &format!(":{}/", self.port));
        assert_ne!(via, url, "{url} does not name port {}", self.server.1);
        via
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if self.open.is_some() {
            self.close();
        }
    }
}
