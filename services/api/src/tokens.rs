//! Token management: `api tokens issue|list|revoke`, and the 20 tokens of
//! the very first start, written once to a 0600 file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use db::tokens::{NewToken, TokenRow};
use db::PgPool;
use domain::token::Token;

/// Issues `count` tokens with one description and optional lifetime; the
/// clear tokens are returned once and never stored.
pub async fn issue(
    pool: &PgPool,
    secret_key: &[u8],
    count: usize,
    description: &str,
    expires_in: Option<Duration>,
) -> anyhow::Result<Vec<Token>> {
    let expires_at = expires_in
        .map(|d| chrono::Duration::from_std(d).map(|d| Utc::now() + d))
        .transpose()
        .context("--expires-in is too long")?;
    let tokens = generate(count);
    db::tokens::insert(
        pool,
        &new_tokens(&tokens, secret_key),
        description,
        expires_at,
    )
    .await
    .context("Failed to store the new tokens")?;
    Ok(tokens)
}

/// On an empty token table, issues `count` tokens and writes them to a new
/// file in `dir` (mode 0600); returns the file's path. Several replicas
/// starting at once issue them once: the check holds an advisory lock.
pub async fn issue_initial(
    pool: &PgPool,
    secret_key: &[u8],
    count: usize,
    dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    if count == 0 {
        return Ok(None);
    }
    let mut tx = pool
        .begin()
        .await
        .context("begin initial token transaction")?;
    if db::tokens::lock_and_count(&mut tx).await? > 0 {
        return Ok(None);
    }
    let tokens = generate(count);
    db::tokens::insert(
        &mut *tx,
        &new_tokens(&tokens, secret_key),
        "initial token",
        None,
    )
    .await
    .context("Failed to store the initial tokens")?;
    // The file is written before the commit: if it cannot be written, no
    // token exists that nobody can read.
    let path = write_token_file(dir, &tokens)?;
    tx.commit().await.context("commit the initial tokens")?;
    Ok(Some(path))
}

fn generate(count: usize) -> Vec<Token> {
    let mut rng = rand::rng();
    (0..count).map(|_| Token::generate(&mut rng)).collect()
}

fn new_tokens(tokens: &[Token], secret_key: &[u8]) -> Vec<NewToken> {
    tokens
        .iter()
        .map(|t| NewToken {
            hash: t.hash(secret_key),
            prefix: t.prefix().to_owned(),
        })
        .collect()
}

fn write_token_file(dir: &Path, tokens: &[Token]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("Failed to create the token directory {}", dir.display()))?;
    let name = format!("initial-tokens-{}.txt", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("Failed to create {}", path.display()))?;
    let mut text = String::from(
        "# carfeed API tokens issued at first start. Hand each out once, then delete this file.\n",
    );
    for token in tokens {
        text.push_str(token.expose());
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("Failed to write {}", path.display()))?;
    Ok(path)
}

/// Revokes the one token whose prefix starts with `prefix`.
pub async fn revoke(pool: &PgPool, prefix: &str) -> anyhow::Result<TokenRow> {
    if prefix.len() < 4 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("give at least 4 letters or digits of the token's prefix (see `api tokens list`)");
    }
    let mut matches = db::tokens::find_by_prefix(pool, prefix).await?;
    match matches.len() {
        0 => bail!("no token has a prefix starting with {prefix:?}"),
        1 => {}
        n => bail!("{n} tokens have a prefix starting with {prefix:?}: give more characters"),
    }
    let row = matches.remove(0);
    if !db::tokens::revoke(pool, row.id).await? {
        bail!("token {} was already revoked", row.token_prefix);
    }
    Ok(row)
}

/// `api tokens list`: one line per token, no secret.
pub fn render_list(rows: &[TokenRow], now: DateTime<Utc>) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:<17} {:<17} {:<17} {}\n",
        "prefix", "state", "created", "expires", "last used", "description"
    );
    let day = |t: Option<DateTime<Utc>>| {
        t.map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    for row in rows {
        let state = row.state_at(now).as_str();
        out.push_str(&format!(
            "{:<8} {:<8} {:<17} {:<17} {:<17} {}\n",
            row.token_prefix,
            state,
            day(Some(row.created_at)),
            day(row.expires_at),
            day(row.last_used_at),
            row.description
        ));
    }
    out
}
