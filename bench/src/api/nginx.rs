//! nginx running the repo's nginx/nginx.conf in front of an api child.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Debian's nginx in the foreground with the repo's configuration, where
/// only addresses and paths are changed, plus the outer per-address limit:
/// all bench load comes from one address, which the shipped 50 req/s would
/// refuse. The access log is kept, written to a file, as in production
/// (where it goes to the container's stdout).
pub struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Nginx {
    /// The repo's nginx/ configuration.
    pub fn source() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../nginx")
    }

    /// nginx with the configuration in `source` (a copy of nginx/), in
    /// front of the api at `api`.
    pub fn start(binary: &Path, source: &Path, api: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = TempDir::new(port)?;
        let replacements = [
            (
                "set $api_upstream api:8080;",
                format!("set $api_upstream {api};"),
            ),
            (
                "pid /run/nginx.pid;",
                format!("pid {}/nginx.pid;", dir.0.display()),
            ),
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("rate=50r/s", "rate=1000000r/s".to_owned()),
            (
                "access_log /dev/stdout ",
                format!("access_log {}/access.log ", dir.0.display()),
            ),
        ];
        let mut applied = vec![false; replacements.len()];
        // Every file nginx.conf may include (security-headers.conf, ...).
        let mut files: Vec<PathBuf> = std::fs::read_dir(source)
            .with_context(|| format!("read {}", source.display()))?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        files.sort();
        for path in files {
            let file = path.file_name().context("a file name")?;
            let mut text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            for (i, (from, to)) in replacements.iter().enumerate() {
                if text.contains(from) {
                    text = text.replace(from, to);
                    applied[i] = true;
                }
            }
            std::fs::write(dir.0.join(file), text)?;
        }
        if let Some(((from, _), _)) = replacements.iter().zip(applied).find(|(_, done)| !done) {
            bail!("nginx/ no longer contains {from:?}: update bench/src/api/nginx.rs");
        }
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(dir.0.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start nginx")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not listen within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The master's pid (its workers are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where nginx looks for an executable: PATH, then Debian's place.
    pub fn binary() -> Option<PathBuf> {
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("nginx"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/sbin/nginx")])
            .find(|p| p.is_file())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to our own nginx master, by its pid: it stops its workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped (the bench has no tempfile dependency).
struct TempDir(PathBuf);

impl TempDir {
    fn new(port: u16) -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("carfeed-bench-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
