//! The worker fleet's vocabulary (SPEC 6): task kinds, the status words of
//! tasks, proxies and workers, and a proxy's address. The words are what
//! the database stores and operators read; `db` maps them, and nothing else
//! spells them.
//!
//! `ProxyUrl` is the one place that splits a proxy's credentials off its
//! address: it parses the three line shapes an upload takes, stores a
//! normalised URL, and shows itself with the credentials masked, so a
//! user or password never reaches a log line, an error or `status`.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

/// Defines a closed set of words: `as_str`, `FromStr`, `Display`, `ALL`,
/// and serde as the word.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every word, in the order operators read them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word the database stores.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $($word => Ok($name::$variant),)+
                    other => Err(UnknownWord { what: stringify!($name), word: other.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownWord;
            fn try_from(word: String) -> Result<Self, UnknownWord> {
                word.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// A word outside its set (a row written by hand, a newer schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
}

words!(
    /// What a task asks for.
    TaskKind {
        /// Target: a listing's inner_id, refreshed from the upstream's `/offer`.
        OfferRefresh = "offer_refresh",
        /// Target: an http(s) URL, fetched.
        FetchUrl = "fetch_url",
        /// Target: an http(s) URL, rendered by a browser worker.
        RenderUrl = "render_url",
    }
);

impl TaskKind {
    /// The target is a URL (checked at upload and again at claim).
    pub fn takes_url(self) -> bool {
        matches!(self, Self::FetchUrl | Self::RenderUrl)
    }
}

words!(
    /// Where a task is in its life.
    TaskStatus {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
    }
);

words!(
    /// Whether a proxy can be claimed.
    ProxyStatus {
        Free = "free",
        InUse = "in_use",
        /// A site refused it (403, 429, a block page): it rests.
        Blocked = "blocked",
        /// It failed itself (407, unreachable, failed CONNECT): it rests,
        /// longer each time in a row.
        Cooldown = "cooldown",
    }
);

words!(
    /// A `worker run` process's row.
    WorkerStatus {
        Alive = "alive",
        /// It exited cleanly.
        Stopped = "stopped",
        /// Its heartbeat went stale; cleanup took what it held.
        Dead = "dead",
    }
);

/// A proxy: `http` or `https`, a host, a port and maybe credentials.
/// `Display` and `Debug` mask the credentials; `stored()` is the
/// normalised URL the database keeps (credentials included).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    scheme: String,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

/// Why a proxy line was refused; never quotes the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}: {shown}")]
pub struct BadProxy {
    pub why: String,
    /// The line with anything that may be a credential masked.
    pub shown: String,
}

impl ProxyUrl {
    /// Parses `host:port`, `host:port:user:pass` or
    /// `scheme://[user:pass@]host:port` (http or https).
    pub fn parse(line: &str) -> Result<Self, BadProxy> {
        let bad = |why: &str| BadProxy {
            why: why.to_owned(),
            shown: redact_line(line),
        };
        if line.contains("://") {
            let url = url::Url::parse(line).map_err(|e| bad(&format!("not a proxy URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad(&format!(
                    "unsupported proxy scheme {:?} (http or https)",
                    url.scheme()
                )));
            }
            let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                return Err(bad("a proxy needs a host and a port"));
            };
            if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
                return Err(bad("a proxy URL has no path"));
            }
            let credentials = match url.username() {
                "" => None,
                user => Some((decode(user), url.password().map(decode).unwrap_or_default())),
            };
            return Ok(Self {
                scheme: url.scheme().to_owned(),
                host: host.to_owned(),
                port,
                credentials,
            });
        }
        let parts: Vec<&str> = line.split(':').collect();
        let (host, port, credentials) = match parts.as_slice() {
            [host, port] => (*host, *port, None),
            [host, port, user, pass] => {
                (*host, *port, Some(((*user).to_owned(), (*pass).to_owned())))
            }
            _ => {
                return Err(bad(
                    "expected host:port, host:port:user:pass or scheme://user:pass@host:port",
                ))
            }
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(&format!("bad port {port:?}")))?;
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid_host {
            return Err(bad(&format!("bad host {host:?}")));
        }
        Ok(Self {
            scheme: "http".into(),
            host: host.to_owned(),
            port,
            credentials,
        })
    }

    /// The normalised URL the database keeps:
    /// `scheme://[user:pass@]host:port`, credentials percent-encoded.
    pub fn stored(&self) -> String {
        match &self.credentials {
            None => self.address(),
            Some((user, pass)) => format!(
                "{}://{}:{}@{}:{}",
                self.scheme,
                utf8_percent_encode(user, NON_ALPHANUMERIC),
                utf8_percent_encode(pass, NON_ALPHANUMERIC),
                self.host,
                self.port
            ),
        }
    }

    /// `scheme://host:port`, without credentials (what a client connects to).
    pub fn address(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }

    /// (user, password), decoded.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

impl FromStr for ProxyUrl {
    type Err = BadProxy;
    fn from_str(s: &str) -> Result<Self, BadProxy> {
        Self::parse(s)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.credentials {
            None => write!(f, "{}", self.address()),
            Some(_) => write!(f, "{}://***:***@{}:{}", self.scheme, self.host, self.port),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

impl serde::Serialize for ProxyUrl {
    /// Masked, like `Display`: a serialised proxy is shown to someone.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// A proxy line (or stored URL) as it may be shown: the userinfo of a URL
/// and everything after `host:port:` of the colon form are masked.
pub fn redact_line(line: &str) -> String {
    if let Some((scheme, rest)) = line.split_once("://") {
        return match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => line.to_owned(),
        };
    }
    let parts: Vec<&str> = line.splitn(3, ':').collect();
    match parts.as_slice() {
        [host, port, _] => format!("{host}:{port}:***"),
        _ => line.to_owned(),
    }
}

/// A target address a worker must not fetch unless told to
/// (`worker.allow_private_targets`): loopback, private (RFC 1918, unique
/// local), link-local (cloud metadata lives at 169.254.169.254), shared
/// (CGNAT), unspecified, broadcast, and IPv4 inside IPv6.
pub fn is_private_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local, fd00:ec2::254 included
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_three_proxy_line_shapes_are_normalised_and_shown_without_credentials() {
        let plain = ProxyUrl::parse("10.0.0.1:3128").unwrap();
        assert_eq!(plain.stored(), "http://10.0.0.1:3128");
        assert_eq!(plain.to_string(), "http://10.0.0.1:3128");
        let colon = ProxyUrl::parse("proxy.example.com:8080:bob:s3cret!").unwrap();
        assert_eq!(
            colon.stored(),
            "http://bob:s3cret%21@proxy.example.com:8080"
        );
        assert_eq!(colon.credentials(), Some(("bob", "s3cret!")));
        assert_eq!(colon.to_string(), "http://***:***@proxy.example.com:8080");
        assert!(!format!("{colon:?}").contains("s3cret"));
        let url = ProxyUrl::parse("https://bob:p%40ss@p.example.com:8443").unwrap();
        assert_eq!(url.credentials(), Some(("bob", "p@ss")));
        assert_eq!(url.address(), "https://p.example.com:8443");
        assert_eq!(ProxyUrl::parse(&url.stored()).unwrap(), url, "round trip");
        for bad in [
            "10.0.0.1",
            "host:0",
            "host:99999",
            "a b:80",
            "h:1:u",
            "ftp://h:21",
            "http://h:80/x",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn a_refused_proxy_line_never_quotes_its_password() {
        for line in [
            "h:1:bob:hunter2:extra",
            "ftp://bob:hunter2@h:21",
            "http://bob:hunter2@h:80/path",
            "bad host:80:bob:hunter2",
        ] {
            let err = ProxyUrl::parse(line).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn words_round_trip() {
        for kind in TaskKind::ALL {
            assert_eq!(kind.as_str().parse::<TaskKind>().unwrap(), *kind);
        }
        for s in ProxyStatus::ALL {
            assert_eq!(s.as_str().parse::<ProxyStatus>().unwrap(), *s);
        }
        assert!("nope".parse::<TaskStatus>().is_err());
        assert_eq!(WorkerStatus::Alive.to_string(), "alive");
    }
}
