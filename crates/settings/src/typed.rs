//! Deserialisers into the settings' final types: bounded integers
//! (`NonZeroU32`, `usize`, ...), socket addresses, IP ranges, cron
//! schedules, URLs. A value is checked and converted once, here, so no
//! caller converts it again or falls back to a default.
//!
//! Their errors are sentences that start with "must" ("must be between 1
//! and 10000, got -5"); `load` puts the key in front of them, so a bad
//! value reads `config: normalizer.batch_size must be between 1 and 10000,
//! got -5`.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::IpRange;

/// An integer type a setting ends up as, converted from the `i64` the
/// configuration holds.
pub trait Integer: Sized {
    fn from_i64(value: i64) -> Option<Self>;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            fn from_i64(value: i64) -> Option<Self> {
                <$t>::try_from(value).ok()
            }
        }
    )*};
}
integer!(i32, i64, u32, u64, usize);

impl Integer for NonZeroU32 {
    fn from_i64(value: i64) -> Option<Self> {
        u32::try_from(value).ok().and_then(NonZeroU32::new)
    }
}

impl Integer for NonZeroUsize {
    fn from_i64(value: i64) -> Option<Self> {
        usize::try_from(value).ok().and_then(NonZeroUsize::new)
    }
}

/// 0 is `None` ("off"), anything else a positive value.
impl Integer for Option<NonZeroU32> {
    fn from_i64(value: i64) -> Option<Self> {
        u32::try_from(value).ok().map(NonZeroU32::new)
    }
}

/// An integer in `MIN..=MAX`, as `T`:
/// `#[serde(deserialize_with = "typed::int::<_, _, 1, 10_000>")]`.
pub fn int<'de, D, T, const MIN: i64, const MAX: i64>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Integer,
{
    let value = i64::deserialize(deserializer)?;
    if !(MIN..=MAX).contains(&value) {
        return Err(D::Error::custom(format!(
            "must be between {MIN} and {MAX}, got {value}"
        )));
    }
    T::from_i64(value)
        .ok_or_else(|| D::Error::custom(format!("must be between {MIN} and {MAX}, got {value}")))
}

/// An address like `0.0.0.0:8080`.
pub fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim().parse().map_err(|_| {
        D::Error::custom(format!(
            "must be an address like 0.0.0.0:8080, got {text:?}"
        ))
    })
}

/// An address like `127.0.0.1:9090`, or empty: `None` (off).
pub fn optional_socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim().parse().map(Some).map_err(|_| {
        D::Error::custom(format!(
            "must be an address like 127.0.0.1:9090, or empty (off), got {text:?}"
        ))
    })
}

/// An `http://` or `https://` URL.
pub fn http_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<url::Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    url::Url::parse(text.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| {
            D::Error::custom(format!(
                "must be a URL starting with http:// or https://, got {text:?}"
            ))
        })
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IpRange::parse(&text).ok_or_else(|| {
            D::Error::custom(format!(
                "must be an IP address or CIDR range like 172.16.0.0/12, got {text:?}"
            ))
        })
    }
}

/// A 5-field cron expression (UTC), parsed. `Display` gives it back as
/// written.
#[derive(Clone)]
pub struct Schedule {
    cron: croner::Cron,
}

impl Schedule {
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }

    pub fn as_str(&self) -> &str {
        self.cron.as_str()
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("must be a 5-field cron expression like \"0 2 * * *\", got {text:?}");
        if text.split_whitespace().count() != 5 {
            return Err(bad());
        }
        let cron = croner::Cron::new(text).parse().map_err(|_| bad())?;
        Ok(Self { cron })
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// A lower-case HTTP header name (token characters only), like `x-real-ip`.
pub fn header_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<http::HeaderName, D::Error> {
    let name = String::deserialize(deserializer)?;
    http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .ok()
        .filter(|_| !name.is_empty())
        .ok_or_else(|| {
            D::Error::custom(format!(
                "must be an HTTP header name like x-real-ip, got {name:?}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_keeps_its_text_and_refuses_a_six_field_one() {
        let schedule: Schedule = "0 2 * * *".parse().unwrap();
        assert_eq!(schedule.to_string(), "0 2 * * *");
        assert!("0 0 2 * * *".parse::<Schedule>().is_err());
        assert!("61 2 * * *".parse::<Schedule>().is_err());
    }
}
