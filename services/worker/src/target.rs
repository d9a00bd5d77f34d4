//! A task's target checked when it is claimed, not only at upload: a row
//! written straight into `tasks` passes here too. A URL must be http(s);
//! and unless `worker.allow_private_targets`, a host that is or resolves to
//! a loopback, private, link-local or metadata address is refused (a fleet
//! behind a firewall must not be made to fetch its own network).
//!
//! The name is resolved here, by the worker's resolver; the proxy resolves
//! it again for the fetch. A name this resolver cannot resolve is left to
//! the proxy.

use domain::fleet::is_private_address;

/// `Err` with the reason when the task must not run.
pub async fn check(target: &str, allow_private: bool) -> Result<(), String> {
    let url = url::Url::parse(target).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("not an http(s) URL (scheme {:?})", url.scheme()));
    }
    let Some(host) = url.host() else {
        return Err("a URL without a host".into());
    };
    if allow_private {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses: Vec<std::net::IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![ip.into()],
        url::Host::Ipv6(ip) => vec![ip.into()],
        url::Host::Domain(name) => match tokio::net::lookup_host((name, port)).await {
            Ok(found) => found.map(|a| a.ip()).collect(),
            Err(_) => Vec::new(),
        },
    };
    match addresses.into_iter().find(|ip| is_private_address(*ip)) {
        Some(ip) => Err(format!(
            "the target resolves to a private address ({ip}); set worker.allow_private_targets to fetch it"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn schemes_and_private_targets_are_refused_unless_allowed() {
        assert!(check("file:///etc/passwd", true).await.is_err());
        assert!(check("ftp://example.com/", true).await.is_err());
        assert!(check("http://127.0.0.1:8080/x", true).await.is_ok());
        for private in [
            "http://127.0.0.1:8080/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://10.0.0.5/",
            "http://localhost/",
        ] {
            let refused = check(private, false).await;
            assert!(refused.is_err(), "{private} must be refused");
        }
        assert!(check("http://93.184.216.34/", false).await.is_ok());
    }
}
