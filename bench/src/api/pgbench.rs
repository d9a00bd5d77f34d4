//! The api's own SQL under pgbench: the statement the api sent for one
//! request, read back from Postgres, replayed by `pgbench -M prepared` with
//! the same parameters and session settings, as many clients as the api has
//! connections. The baseline of the api's peak: what Postgres alone serves.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, ensure, Context};
use sqlx::PgPool;

const PGBENCH: &str = "/usr/bin/pgbench";

/// One of the api's statements as pgbench replays it.
pub struct Replay {
    /// The api's SQL, each `$n` written `CAST(:pn AS <type>)`.
    pub sql: String,
    /// `pn=value` for pgbench's `-D`.
    values: Vec<String>,
    script: PathBuf,
    url: String,
    clients: u32,
}

/// A bind of the api's statement: its value as text and the type the api
/// (sqlx) declares for it, so pgbench's untyped parameter gets the same one.
pub struct Bind {
    pub value: &'static str,
    pub sql_type: &'static str,
}

/// The last statement of the connections named `application_name`: the api
/// probe (a pool of one) after answering the request once more.
pub async fn last_statement(pool: &PgPool, application_name: &str) -> anyhow::Result<String> {
    let statements: Vec<String> = sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'",
    )
    .bind(application_name)
    .fetch_all(pool)
    .await?;
    match &statements[..] {
        [one] => Ok(one.clone()),
        other => bail!(
            "expected one idle connection named {application_name}, found {}",
            other.len()
        ),
    }
}

impl Replay {
    /// `sql` (with `$1`..) as a pgbench script of `clients` clients on the
    /// database at `url`; `bind_for` names each `$n`'s value by the SQL
    /// before it. Checks first that the statement alone answers the page:
    /// it returns `rows` rows, so the api sent no other (a follow-up runs
    /// only after a short first answer), and is not one of the follow-ups.
    pub async fn new(
        pool: &PgPool,
        sql: &str,
        bind_for: impl Fn(&str) -> Option<Bind>,
        rows: usize,
        url: &str,
        clients: u32,
    ) -> anyhow::Result<Self> {
        ensure!(
            !sql.contains("WITH matching") && !sql.contains("ORDER BY inner_id"),
            "the captured statement is a follow-up, not the page's first: {sql}"
        );
        let mut binds = Vec::new();
        for n in 1.. {
            let Some(at) = sql.find(&format!("${n}")) else {
                break;
            };
            let bind =
                bind_for(&sql[..at]).with_context(|| format!("which value is ${n}? {sql}"))?;
            binds.push(bind);
        }
        let mut replayed = sql.to_owned();
        let mut values = Vec::new();
        // From the highest number down, so $1 never matches inside $10.
        for (i, bind) in binds.iter().enumerate().rev() {
            let n = i + 1;
            replayed = replayed.replace(
                &format!("${n}"),
                &format!("CAST(:p{n} AS {})", bind.sql_type),
            );
            values.push(format!("p{n}={}", bind.value));
        }
        let mut check = sqlx::query(sql);
        for bind in &binds {
            check = match bind.sql_type {
                "bigint" => check.bind(bind.value.parse::<i64>()?),
                _ => check.bind(bind.value),
            };
        }
        let answered = check.fetch_all(pool).await?.len();
        ensure!(
            answered == rows,
            "the captured statement answers {answered} rows, not {rows}: {sql}"
        );
        let script =
            std::env::temp_dir().join(format!("carfeed-bench-pgbench-{}.sql", std::process::id()));
        std::fs::write(&script, format!("{replayed};\n"))?;
        Ok(Self {
            sql: replayed,
            values,
            script,
            url: url.to_owned(),
            clients,
        })
    }

    /// Transactions per second of `seconds` of pgbench with the session
    /// settings `options` (as `PGOPTIONS`: `-c name=value ...`).
    pub fn run(&self, seconds: u32, options: &str) -> anyhow::Result<f64> {
        let mut command = Command::new(PGBENCH);
        command
            .args(["--no-vacuum", "--protocol=prepared", "--jobs=2"])
            .arg(format!("--client={}", self.clients))
            .arg(format!("--time={seconds}"))
            .arg("--file")
            .arg(&self.script)
            .env("PGOPTIONS", options);
        for value in &self.values {
            command.arg("--define").arg(value);
        }
        let output = command
            .arg(&self.url)
            .output()
            .with_context(|| format!("run {PGBENCH}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            output.status.success(),
            "pgbench failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        let failed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("0");
        ensure!(failed == "0", "pgbench: {failed} failed transactions");
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no tps in pgbench's output: {stdout}"))
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.script);
    }
}
