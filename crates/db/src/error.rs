use thiserror::Error;

/// Database failures a caller may want to tell apart. `sqlx::Error` is mapped
/// here once, at the edge of this crate.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("row not found")]
    NotFound,
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    #[error(
        "database schema is at version {found}, this build needs {needed}: run the `migrate` subcommand first"
    )]
    SchemaTooOld { found: i64, needed: i64 },
    #[error("applying migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Sqlx(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("23505") => {
                Self::Conflict {
                    constraint: db.constraint().unwrap_or("unknown").to_owned(),
                }
            }
            other => Self::Sqlx(other),
        }
    }
}

/// A fenced update (`... WHERE <cursor> = $expected`) must touch exactly one
/// row; none means the cursor is not where the caller thought (another run
/// moved it, or there is no state row): `NotFound`.
pub(crate) fn expect_one_row(done: sqlx::postgres::PgQueryResult) -> Result<(), DbError> {
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(DbError::NotFound)
    }
}
