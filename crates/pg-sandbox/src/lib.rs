//! A throwaway PostgreSQL server for the test and bench harnesses.
//!
//! `PgSandbox::start` uses the PostgreSQL server binaries when they are
//! installed (`initdb`, `pg_ctl`: on `PATH`, in `PG_BIN_DIR`, or under
//! `/usr/lib/postgresql/*/bin`), running them as the `postgres` user when we
//! are root (Postgres refuses root). Without them it falls back to a
//! `postgres` container through testcontainers when a Docker engine answers.
//! The server listens on 127.0.0.1 only, on a free port, with trust auth, and
//! is stopped and deleted when the sandbox is dropped.
//!
//! It owns nothing of carfeed's schema: callers migrate what they create.

mod local;

use anyhow::{bail, Context};

/// How the server is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// For tests: durability off (fsync, synchronous_commit), many connections.
    Fast,
    /// For benchmarks: Postgres' durable defaults, with enough memory and WAL
    /// that checkpoints do not dominate a bulk load.
    Durable,
}

/// A running throwaway server. Dropping it stops the server and deletes its data.
pub struct PgSandbox {
    url: String,
    _backend: Backend,
}

// The variants are held only for their Drop, which stops the server.
#[allow(dead_code)]
enum Backend {
    Local(local::LocalServer),
    Container(Box<testcontainers::Container<testcontainers_modules::postgres::Postgres>>),
}

impl PgSandbox {
    pub fn start(profile: Profile) -> anyhow::Result<Self> {
        if let Some(bin_dir) = local::find_bin_dir() {
            let server = local::LocalServer::start(&bin_dir, profile)
                .context("Failed to start a local PostgreSQL server")?;
            return Ok(Self {
                url: server.url(),
                _backend: Backend::Local(server),
            });
        }
        if docker_answers() {
            use testcontainers::runners::SyncRunner;
            let container = testcontainers_modules::postgres::Postgres::default()
                .start()
                .context("Failed to start a postgres container through testcontainers")?;
            let port = container.get_host_port_ipv4(5432)?;
            return Ok(Self {
                url: format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres"),
                _backend: Backend::Container(Box::new(container)),
            });
        }
        bail!(
            "no PostgreSQL available: install the server binaries (initdb, pg_ctl), \
             start a Docker engine, or set DATABASE_URL"
        )
    }

    /// A superuser URL for the `postgres` database, e.g.
    /// `postgres://postgres@127.0.0.1:41234/postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Restarts the server in place (same URL, same data; open sessions are
    /// cut), for tests of what a service does when Postgres goes away.
    /// Local servers only.
    pub fn restart(&self) -> anyhow::Result<()> {
        match &self._backend {
            Backend::Local(server) => server.restart(),
            Backend::Container(_) => bail!("restart() needs a local PostgreSQL server"),
        }
    }

    /// The URL of another database on the same server.
    pub fn url_for(&self, database: &str) -> String {
        match self.url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{database}"),
            None => self.url.clone(),
        }
    }
}

fn docker_answers() -> bool {
    std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
