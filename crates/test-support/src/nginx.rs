//! Debian's nginx running the repo's `nginx/` configuration on loopback, in
//! front of an api at a given address (the api's nginx tests, the system
//! test). The configuration is copied with test addresses filled in; every
//! substitution must apply, so a drifting configuration fails the tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The files of `nginx/`.
pub const FILES: [&str; 6] = [
    "nginx.conf",
    "nginx.prod.conf",
    "carfeed-http.conf",
    "carfeed-proxy.conf",
    "api-locations.conf",
    "security-headers.conf",
];

/// The nginx executable: on PATH, else Debian's place.
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
}

/// The nginx executable, or `None` after printing why the test is skipped
/// (`crate::tool`: a missing nginx fails the test under CI).
pub fn binary_or_skip() -> Option<PathBuf> {
    crate::tool::or_skip(
        "nginx",
        binary(),
        "no nginx on PATH or at /usr/sbin/nginx; apt-get install -y nginx-light",
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The repo's nginx/ copied into `dir`, pointed at the api at `api`,
/// listening on 127.0.0.1 `http` and `https`, with a self-signed
/// certificate where Let's Encrypt's would be.
pub fn prepare(dir: &Path, api: SocketAddr, http: u16, https: u16) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nginx");
    let replacements = [
        (
            "set $api_upstream api:8080;",
            format!("set $api_upstream {api};"),
        ),
        (
            "pid /run/nginx.pid;",
            format!("pid {}/nginx.pid;", dir.display()),
        ),
        ("listen 80;", format!("listen 127.0.0.1:{http};")),
        (
            "listen 443 ssl http2;",
            format!("listen 127.0.0.1:{https} ssl http2;"),
        ),
        (
            "/etc/letsencrypt/live/carfeed/",
            format!("{}/certs/", dir.display()),
        ),
        ("/var/www/certbot", format!("{}/certbot", dir.display())),
        (
            "access_log /dev/stdout carfeed;",
            format!("access_log {}/access.log carfeed;", dir.display()),
        ),
    ];
    let mut applied = vec![false; replacements.len()];
    for file in FILES {
        let mut text = std::fs::read_to_string(source.join(file)).unwrap();
        for (i, (from, to)) in replacements.iter().enumerate() {
            if text.contains(from) {
                text = text.replace(from, to);
                applied[i] = true;
            }
        }
        std::fs::write(dir.join(file), text).unwrap();
    }
    for ((from, _), done) in replacements.iter().zip(applied) {
        assert!(
            done,
            "nginx/ no longer contains {from:?}: update test-support's nginx.rs"
        );
    }
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=api.example.com"])
        .arg("-keyout")
        .arg(dir.join("certs/privkey.pem"))
        .arg("-out")
        .arg(dir.join("certs/fullchain.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
}

/// nginx in the foreground running nginx.conf (or nginx.prod.conf, over
/// TLS); stopped when dropped.
pub struct Nginx {
    child: Child,
    port: u16,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(binary: &Path, api: SocketAddr) -> Self {
        Self::start_conf(binary, api, false)
    }

    /// nginx.prod.conf; `url` is its HTTPS side (self-signed certificate).
    pub fn start_tls(binary: &Path, api: SocketAddr) -> Self {
        Self::start_conf(binary, api, true)
    }

    fn start_conf(binary: &Path, api: SocketAddr, tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (http, https) = (free_port(), free_port());
        prepare(dir.path(), api, http, https);
        let (conf, port) = if tls {
            ("nginx.prod.conf", https)
        } else {
            ("nginx.conf", http)
        };
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join(conf))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            tls,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to our own master (by its pid): it stops its workers too.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
