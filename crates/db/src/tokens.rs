//! `api_tokens`: keyed hashes of API tokens, never the tokens themselves.

use chrono::{DateTime, Utc};
use domain::token::TokenState;
use sqlx::{PgConnection, PgExecutor};

use crate::DbError;

/// A token to store: its keyed hash and visible prefix.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub hash: [u8; 32],
    pub prefix: String,
}

/// What a request's token resolves to.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenGrant {
    pub id: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenGrant {
    /// Where the token stands at `now`.
    pub fn state_at(&self, now: DateTime<Utc>) -> TokenState {
        TokenState::at(now, self.expires_at, self.revoked_at)
    }

    /// Neither revoked nor expired at `now`.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.state_at(now) == TokenState::Active
    }
}

/// One row for `api tokens list` (no hash).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub token_prefix: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    /// Where the token stands at `now`.
    pub fn state_at(&self, now: DateTime<Utc>) -> TokenState {
        TokenState::at(now, self.expires_at, self.revoked_at)
    }
}

/// Stores a batch of tokens in one statement; returns their ids in order.
pub async fn insert(
    db: impl PgExecutor<'_>,
    tokens: &[NewToken],
    description: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Vec<i64>, DbError> {
    let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| t.hash.to_vec()).collect();
    let prefixes: Vec<&str> = tokens.iter().map(|t| t.prefix.as_str()).collect();
    let ids = sqlx::query_scalar(
        "INSERT INTO api_tokens (token_hash, token_prefix, description, expires_at)
         SELECT h, p, $3, $4 FROM UNNEST($1::bytea[], $2::varchar[]) WITH ORDINALITY AS t(h, p, n)
         ORDER BY n
         RETURNING id",
    )
    .bind(&hashes)
    .bind(&prefixes)
    .bind(description)
    .bind(expires_at)
    .fetch_all(db)
    .await?;
    Ok(ids)
}

/// The token with this keyed hash, whatever its state.
pub async fn find_by_hash(
    db: impl PgExecutor<'_>,
    hash: &[u8; 32],
) -> Result<Option<TokenGrant>, DbError> {
    let grant =
        sqlx::query_as("SELECT id, expires_at, revoked_at FROM api_tokens WHERE token_hash = $1")
            .bind(&hash[..])
            .fetch_optional(db)
            .await?;
    Ok(grant)
}

/// Every token, newest first.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<TokenRow>, DbError> {
    let rows = sqlx::query_as(
        "SELECT id, token_prefix, description, created_at, expires_at, revoked_at, last_used_at
         FROM api_tokens ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Tokens whose prefix starts with `prefix` (revocation needs exactly one).
pub async fn find_by_prefix(
    db: impl PgExecutor<'_>,
    prefix: &str,
) -> Result<Vec<TokenRow>, DbError> {
    let rows = sqlx::query_as(
        "SELECT id, token_prefix, description, created_at, expires_at, revoked_at, last_used_at
         FROM api_tokens WHERE token_prefix LIKE $1 || '%' ORDER BY id",
    )
    .bind(prefix.replace(['%', '_', '\\'], ""))
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Revokes one token; returns false when it was already revoked.
pub async fn revoke(db: impl PgExecutor<'_>, id: i64) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets `last_used_at = now()` for these tokens, in one statement.
pub async fn touch(db: impl PgExecutor<'_>, ids: &[i64]) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Takes the lock that serialises the first-start token issue across
/// replicas, for the rest of the caller's transaction, and counts the tokens.
pub async fn lock_and_count(conn: &mut PgConnection) -> Result<i64, DbError> {
    // Any constant works as long as only this code path uses it.
    sqlx::query("SELECT pg_advisory_xact_lock(7300314159)")
        .execute(&mut *conn)
        .await?;
    let count = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(&mut *conn)
        .await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    fn token(n: u8) -> NewToken {
        NewToken {
            hash: [n; 32],
            prefix: format!("pre{n:03}"),
        }
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn inserted_tokens_are_found_by_hash_and_listed(pool: PgPool) {
        let ids = insert(&pool, &[token(1), token(2)], "frontend", None)
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        let grant = find_by_hash(&pool, &[2; 32]).await.unwrap().unwrap();
        assert_eq!(grant.id, ids[1]);
        assert!(grant.is_valid_at(Utc::now()));
        assert!(find_by_hash(&pool, &[3; 32]).await.unwrap().is_none());
        let rows = list(&pool).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.description == "frontend"));
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_revoked_or_expired_token_is_no_longer_valid(pool: PgPool) {
        let past = Utc::now() - chrono::Duration::hours(1);
        let ids = insert(&pool, &[token(1)], "", None).await.unwrap();
        insert(&pool, &[token(2)], "", Some(past)).await.unwrap();
        assert!(revoke(&pool, ids[0]).await.unwrap());
        assert!(!revoke(&pool, ids[0]).await.unwrap());
        let revoked = find_by_hash(&pool, &[1; 32]).await.unwrap().unwrap();
        let expired = find_by_hash(&pool, &[2; 32]).await.unwrap().unwrap();
        assert!(!revoked.is_valid_at(Utc::now()));
        assert!(!expired.is_valid_at(Utc::now()));
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn prefix_lookup_matches_only_tokens_starting_with_it(pool: PgPool) {
        insert(&pool, &[token(1), token(2), token(12)], "", None)
            .await
            .unwrap();
        assert_eq!(find_by_prefix(&pool, "pre001").await.unwrap().len(), 1);
        assert_eq!(find_by_prefix(&pool, "pre0").await.unwrap().len(), 3);
        assert_eq!(find_by_prefix(&pool, "%").await.unwrap().len(), 3);
        assert_eq!(find_by_prefix(&pool, "zzz").await.unwrap().len(), 0);
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn touch_sets_last_used_at_for_the_given_tokens_only(pool: PgPool) {
        let ids = insert(&pool, &[token(1), token(2)], "", None)
            .await
            .unwrap();
        assert_eq!(touch(&pool, &ids[..1]).await.unwrap(), 1);
        let rows = list(&pool).await.unwrap();
        let used: Vec<bool> = rows.iter().map(|r| r.last_used_at.is_some()).collect();
        let by_id = |id| rows.iter().find(|r| r.id == id).unwrap();
        assert!(by_id(ids[0]).last_used_at.is_some());
        assert!(by_id(ids[1]).last_used_at.is_none());
        assert_eq!(used.iter().filter(|u| **u).count(), 1);
    }
}
