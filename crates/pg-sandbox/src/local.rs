//! A server from the local PostgreSQL binaries, in a temporary directory.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use nix::unistd::{Gid, Uid, User};

use crate::Profile;

pub(crate) struct LocalServer {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as: Option<(Uid, Gid)>,
    // Deleted last, after the server has stopped.
    _root: tempfile::TempDir,
}

/// Where `initdb` and `pg_ctl` live, if anywhere.
pub(crate) fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Ok(initdb) = which::which("initdb") {
        if which::which("pg_ctl").is_ok() {
            return initdb.parent().map(Path::to_path_buf);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

impl LocalServer {
    pub(crate) fn start(bin_dir: &Path, profile: Profile) -> anyhow::Result<Self> {
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name("postgres")?
                .context("running as root needs a `postgres` user to run the server as")?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        let root = tempfile::Builder::new().prefix("carfeed-pg-").tempdir()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(root.path(), Some(uid.as_raw()), Some(gid.as_raw()))?;
        }
        let data_dir = root.path().join("data");

        let mut server = Self {
            bin_dir: bin_dir.to_path_buf(),
            data_dir,
            port: 0,
            run_as,
            _root: root,
        };
        server.initdb()?;
        // A free port can be taken between our probe and the server's bind:
        // try a few.
        let mut last_error = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.pg_ctl_start(profile) {
                Ok(()) => return Ok(server),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("server did not start")))
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        // The server's children must not inherit our test output pipes.
        cmd.stdin(Stdio::null());
        cmd
    }

    fn initdb(&self) -> anyhow::Result<()> {
        for locale in ["C.UTF-8", "C"] {
            let output = self
                .command("initdb")
                .arg("-D")
                .arg(&self.data_dir)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
                .arg(format!("--locale={locale}"))
                .output()
                .context("Failed to run initdb")?;
            if output.status.success() {
                return Ok(());
            }
            let _ = std::fs::remove_dir_all(&self.data_dir);
            if locale == "C" {
                bail!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        Ok(())
    }

    fn pg_ctl_start(&self, profile: Profile) -> anyhow::Result<()> {
        let socket_dir = self.data_dir.parent().unwrap_or(&self.data_dir);
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            socket_dir.display()
        );
        let tuning = match profile {
            Profile::Fast => {
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=400 -c shared_buffers=256MB"
            }
            Profile::Durable => {
                " -c max_connections=200 -c shared_buffers=1GB -c max_wal_size=8GB \
                 -c checkpoint_timeout=30min"
            }
        };
        options.push_str(tuning);
        let log = self.log_path();
        let output = self
            .pg_ctl("start")
            .args(["-w", "-t", "60", "-o"])
            .arg(options)
            .output()
            .context("Failed to run pg_ctl start")?;
        if output.status.success() {
            return Ok(());
        }
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        bail!(
            "pg_ctl start failed: {} {}",
            String::from_utf8_lossy(&output.stderr).trim(),
            server_log.lines().last().unwrap_or_default()
        )
    }
}

impl LocalServer {
    fn log_path(&self) -> PathBuf {
        self.data_dir
            .parent()
            .unwrap_or(&self.data_dir)
            .join("server.log")
    }

    /// `pg_ctl <action>` on this server's data directory and log file.
    fn pg_ctl(&self, action: &str) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.arg(action)
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_path());
        cmd
    }

    /// Stops the server (fast shutdown: sessions are cut) and starts it
    /// again on the same port with the same data and options.
    pub(crate) fn restart(&self) -> anyhow::Result<()> {
        let output = self
            .pg_ctl("restart")
            .args(["-m", "fast", "-w", "-t", "60"])
            .output()
            .context("Failed to run pg_ctl restart")?;
        if !output.status.success() {
            bail!(
                "pg_ctl restart failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("stop")
            .args(["-m", "immediate", "-w"])
            .arg("-D")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
