//! The services' database roles (created by migration 0015): the owner
//! sets their passwords after migrating.

use sqlx::PgConnection;

use crate::DbError;

/// Sets `role`'s password. `ALTER ROLE` takes no bound parameters, so the
/// server itself quotes the name and the password (`format('%I', '%L')`)
/// before the statement runs; nothing is spliced on this side.
pub async fn set_password(
    conn: &mut PgConnection,
    role: &str,
    password: &str,
) -> Result<(), DbError> {
    let statement: String =
        sqlx::query_scalar("SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)")
            .bind(role)
            .bind(password)
            .fetch_one(&mut *conn)
            .await?;
    sqlx::raw_sql(&statement).execute(&mut *conn).await?;
    Ok(())
}
