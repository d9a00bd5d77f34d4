//! API tokens (SPEC 5.2): the format, generation and keyed hashing.
//!
//! A token is 16 characters of `[A-Za-z0-9]` drawn from a CSPRNG. The database
//! keeps only `HMAC-SHA256(SECRET_KEY, token)` and the first
//! [`PREFIX_LEN`] characters (to recognise a token in listings and to revoke
//! it), so a copy of the database gives nobody a working token.

use std::fmt;

use chrono::{DateTime, Utc};

use hmac::{Hmac, Mac};
use rand::distr::{Alphanumeric, Distribution};
use rand::CryptoRng;
use sha2::Sha256;

/// Characters in a token.
pub const TOKEN_LEN: usize = 16;
/// Characters of a token kept in clear to recognise it by.
pub const PREFIX_LEN: usize = 6;

/// Where a stored token stands at a moment. The one place that decides it:
/// the api's authentication, `api tokens list` and the stored grant all ask
/// here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active,
    /// Its `expires_at` has passed.
    Expired,
    /// Revoked by `api tokens revoke`; wins over an expiry.
    Revoked,
}

impl TokenState {
    /// The state at `now` of a token that expires at `expires_at` (never
    /// when `None`) and was revoked at `revoked_at`.
    pub fn at(
        now: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        revoked_at: Option<DateTime<Utc>>,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            Self::Expired
        } else {
            Self::Active
        }
    }

    /// The word `api tokens list` shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// A token in clear. `Debug` shows only its prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", self.prefix())
    }
}

/// Why a presented string is not a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    #[error("a token is {TOKEN_LEN} characters long")]
    Length,
    #[error("a token holds only the characters A-Z, a-z and 0-9")]
    Characters,
}

impl Token {
    /// A new random token from a cryptographically secure generator.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self(
            Alphanumeric
                .sample_iter(rng)
                .take(TOKEN_LEN)
                .map(char::from)
                .collect(),
        )
    }

    /// Checks the format of a presented token (not whether it exists).
    pub fn parse(text: &str) -> Result<Self, TokenFormatError> {
        if text.len() != TOKEN_LEN {
            return Err(TokenFormatError::Length);
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::Characters);
        }
        Ok(Self(text.to_owned()))
    }

    /// The token in clear, to print once when it is issued.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The visible prefix stored beside the hash.
    pub fn prefix(&self) -> &str {
        &self.0[..PREFIX_LEN]
    }

    /// `HMAC-SHA256(secret_key, token)`: what the database stores and looks up.
    pub fn hash(&self, secret_key: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret_key)
            .expect("HMAC takes keys of any length");
        mac.update(self.0.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_wins_over_expiry_and_expiry_is_inclusive() {
        let now = Utc::now();
        let past = Some(now - chrono::Duration::seconds(1));
        let future = Some(now + chrono::Duration::seconds(1));
        assert_eq!(TokenState::at(now, None, None), TokenState::Active);
        assert_eq!(TokenState::at(now, future, None), TokenState::Active);
        assert_eq!(TokenState::at(now, Some(now), None), TokenState::Expired);
        assert_eq!(TokenState::at(now, past, None), TokenState::Expired);
        assert_eq!(TokenState::at(now, past, past), TokenState::Revoked);
        assert_eq!(TokenState::at(now, None, past), TokenState::Revoked);
        assert_eq!(TokenState::Revoked.as_str(), "revoked");
    }
    use proptest::prelude::*;

    #[test]
    fn a_generated_token_is_sixteen_alphanumeric_characters() {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let token = Token::generate(&mut rng);
            assert_eq!(token.expose().len(), TOKEN_LEN);
            assert!(token.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(Token::parse(token.expose()), Ok(token.clone()));
        }
    }

    #[test]
    fn generated_tokens_use_all_three_character_classes_and_differ() {
        let mut rng = rand::rng();
        let tokens: Vec<Token> = (0..100).map(|_| Token::generate(&mut rng)).collect();
        let all: String = tokens.iter().map(Token::expose).collect();
        assert!(all.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(all.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(all.bytes().any(|b| b.is_ascii_digit()));
        let distinct: std::collections::HashSet<_> = tokens.iter().map(Token::expose).collect();
        assert_eq!(distinct.len(), tokens.len());
    }

    #[test]
    fn the_hash_depends_on_the_secret_key_and_the_token() {
        let token = Token::parse("a1B2c3D4e5F6g7H8").unwrap();
        let other = Token::parse("a1B2c3D4e5F6g7H9").unwrap();
        let key = b"0123456789abcdef0123456789abcdef";
        let key2 = b"0123456789abcdef0123456789abcdeX";
        assert_eq!(token.hash(key), token.hash(key));
        assert_ne!(token.hash(key), token.hash(key2));
        assert_ne!(token.hash(key), other.hash(key));
        assert_eq!(token.prefix(), "a1B2c3");
    }

    #[test]
    fn the_hash_is_hmac_sha256_of_the_token() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
        // is not a token; check against an independently computed value instead.
        let token = Token::parse("AAAAAAAAAAAAAAAA").unwrap();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"key").unwrap();
        mac.update(b"AAAAAAAAAAAAAAAA");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(token.hash(b"key"), expected);
    }

    #[test]
    fn debug_output_shows_only_the_prefix() {
        let token = Token::parse("a1B2c3D4e5F6g7H8").unwrap();
        let debug = format!("{token:?}");
        assert!(debug.contains("a1B2c3"));
        assert!(!debug.contains("D4e5F6g7H8"));
    }

    #[test]
    fn malformed_tokens_are_refused_with_the_reason() {
        assert_eq!(Token::parse(""), Err(TokenFormatError::Length));
        assert_eq!(
            Token::parse("a1B2c3D4e5F6g7H"),
            Err(TokenFormatError::Length)
        );
        assert_eq!(
            Token::parse("a1B2c3D4e5F6g7H8x"),
            Err(TokenFormatError::Length)
        );
        assert_eq!(
            Token::parse("a1B2c3D4e5F6g7H-"),
            Err(TokenFormatError::Characters)
        );
        assert_eq!(
            Token::parse("a1B2c3D4e5F6g7Hé"),
            Err(TokenFormatError::Length)
        );
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_sixteen_ascii_alphanumerics(text in "\\PC{0,20}") {
            let ok = text.len() == TOKEN_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric());
            prop_assert_eq!(Token::parse(&text).is_ok(), ok);
        }
    }
}
