//! `processed_data` as the api reads it: active offers, filtered, sorted and
//! paged by keyset, returned as the stored `record` JSON text (never parsed
//! and re-serialised here).
//!
//! Keyset pages: rows come in `(sort column, inner_id)` order, both in the
//! requested direction, and a page starts strictly after the last row of the
//! previous one, so page 1,000 is one index range scan like page 1. Offers
//! whose sort column is NULL come after all others in both directions; a page
//! that reaches the end of the non-NULL offers continues into the NULL ones
//! with a second statement.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use crate::DbError;

/// What the list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Price,
    Year,
    KmAge,
    ListedAt,
}

impl SortKey {
    pub const ALL: [SortKey; 4] = [Self::Price, Self::Year, Self::KmAge, Self::ListedAt];

    /// The column, which is also the name the api uses.
    pub const fn column(self) -> &'static str {
        match self {
            Self::Price => "price",
            Self::Year => "year",
            Self::KmAge => "km_age",
            Self::ListedAt => "listed_at",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    const fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }

    const fn after(self) -> &'static str {
        match self {
            Self::Asc => ">",
            Self::Desc => "<",
        }
    }
}

/// The sort column's value of one offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortValue {
    Number(i64),
    Time(DateTime<Utc>),
}

/// Where a page ends: the last row's sort value (None: in the NULL tail)
/// and inner_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub value: Option<SortValue>,
    pub inner_id: String,
}

/// Filters of the list; an empty list or `None` means not filtered, several
/// values of one filter mean any of them. Text filters on mark, model and
/// city ignore case; the others match exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferFilter {
    pub mark: Vec<String>,
    pub model: Vec<String>,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    pub price_from: Option<i64>,
    pub price_to: Option<i64>,
    pub km_age_to: Option<i32>,
    pub city: Vec<String>,
    pub body_type: Vec<String>,
    pub engine_type: Vec<String>,
    pub transmission_type: Vec<String>,
    pub drive_type: Vec<String>,
    pub seller_type: Vec<String>,
    pub is_dealer: Option<bool>,
}

/// The offer's filter terms, exactly as migration 0008 indexes them (GIN).
const TERMS: &str = "api_filter_terms(model, city, body_type, engine_type, \
     transmission_type, drive_type, seller_type, is_dealer)";

#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub filter: OfferFilter,
    pub sort: SortKey,
    pub direction: Direction,
    pub after: Option<Position>,
    pub limit: u32,
}

/// One page: each offer's `record` as JSON text, and where the next page
/// starts (None on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<String>,
    pub next: Option<Position>,
}

#[derive(sqlx::FromRow)]
struct Row {
    inner_id: String,
    n: Option<i64>,
    t: Option<DateTime<Utc>>,
    record: String,
}

impl Row {
    fn position(&self) -> Position {
        let value = match (self.n, self.t) {
            (Some(n), _) => Some(SortValue::Number(n)),
            (None, Some(t)) => Some(SortValue::Time(t)),
            (None, None) => None,
        };
        Position {
            value,
            inner_id: self.inner_id.clone(),
        }
    }
}

/// One page of active offers.
pub async fn page(conn: &mut PgConnection, request: &PageRequest) -> Result<Page, DbError> {
    let want = i64::from(request.limit) + 1;
    let mut rows: Vec<Row> = Vec::new();
    let in_null_tail = matches!(&request.after, Some(p) if p.value.is_none());
    if !in_null_tail {
        if is_guarded(request) {
            rows = fetch(&mut *conn, request, Shape::Walk).await?;
            if rows.len() < want as usize {
                // Fewer matches than a page in the walk: the filter is
                // selective (or the list ends), so its index finds them.
                rows = fetch(&mut *conn, request, Shape::Matching).await?;
            }
        } else {
            rows = fetch(&mut *conn, request, Shape::Direct).await?;
        }
    }
    let missing = want - rows.len() as i64;
    if missing > 0 {
        let mut query = null_tail_statement(request, "", missing);
        // Which index finds the NULL tail's rows depends on the filter's
        // values, as for Matching.
        let tail = query.build_query_as::<Row>().persistent(false);
        rows.extend(tail.fetch_all(&mut *conn).await?);
    }
    let limit = request.limit as usize;
    let next = (rows.len() > limit).then(|| rows[limit - 1].position());
    rows.truncate(limit);
    Ok(Page {
        records: rows.into_iter().map(|r| r.record).collect(),
        next,
    })
}

/// Rows of the sort's index a guarded page walks at most before it looks
/// the filter's matches up instead.
const WALK_ROWS: i64 = 5_000;

/// How the first statement finds its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One statement; the planner chooses. For no filter or only mark,
    /// whose (mark, sort column) indexes serve every sort.
    Direct,
    /// Walk the sort's index, at most `WALK_ROWS` rows, filtering on the
    /// way: a common value fills a page within a few rows. The planner
    /// cannot be trusted to choose this well by itself: a value that
    /// matches nothing once walked all 1,000,000 rows (3.7 s).
    Walk,
    /// The filter's matches first (by its indexes), then sorted: after a
    /// walk found less than a page, so there are few matches.
    Matching,
}

/// How Postgres plans a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// Prepared once per connection and kept, so Postgres' plan cache (in
    /// its default mode) may switch to one generic plan, blind to the
    /// values, after five custom ones, and skip planning from then on: for
    /// the shapes whose filters only test the rows one index hands over in
    /// the sort's order, the same index for every value (planning was
    /// about a third of the typical page's time in Postgres).
    Cached,
    /// Sent unnamed, so planned with its values on every run, never with a
    /// generic plan: the values decide which index finds the matches (a
    /// rare model: the terms' index; a common body type: another one).
    PerValues,
}

impl Shape {
    pub const fn planning(self) -> Planning {
        match self {
            Self::Direct | Self::Walk => Planning::Cached,
            Self::Matching => Planning::PerValues,
        }
    }

    /// The shapes a page's first statement may take.
    fn of(request: &PageRequest) -> &'static [Shape] {
        if is_guarded(request) {
            &[Shape::Walk, Shape::Matching]
        } else {
            &[Shape::Direct]
        }
    }
}

/// The rows of the page's first statement in `shape`, planned as the shape
/// needs.
async fn fetch<'c, E>(db: E, request: &PageRequest, shape: Shape) -> Result<Vec<Row>, DbError>
where
    E: PgExecutor<'c>,
{
    let mut query = first_statement(request, "", shape);
    let rows = query
        .build_query_as()
        .persistent(shape.planning() == Planning::Cached)
        .fetch_all(db)
        .await?;
    Ok(rows)
}

/// Whether a page needs the walk-then-matching guard: any filter but one
/// mark alone, sorted by a column with a (mark, column) index (0004).
fn is_guarded(request: &PageRequest) -> bool {
    let filter = &request.filter;
    let mark_only = OfferFilter {
        mark: filter.mark.clone(),
        ..OfferFilter::default()
    };
    let served = *filter == OfferFilter::default()
        || (*filter == mark_only && filter.mark.len() == 1 && request.sort != SortKey::KmAge);
    !served
}

/// The page's first statement (the offers with a value for the sort
/// column), after `prefix` (`EXPLAIN` for [`explain`]), in `shape`.
fn first_statement(
    request: &PageRequest,
    prefix: &str,
    shape: Shape,
) -> QueryBuilder<'static, Postgres> {
    let col = request.sort.column();
    let dir = request.direction.sql();
    let (n, t) = sort_outputs(request.sort);
    let outputs = format!("inner_id, {n} AS n, {t} AS t, record::text AS record");
    let mut query = QueryBuilder::new(prefix.to_owned());
    match shape {
        Shape::Direct => {
            query.push(format_args!(
                "SELECT {outputs} FROM processed_data WHERE is_active"
            ));
            push_filters(&mut query, &request.filter, Test::Terms);
            push_position(&mut query, request);
        }
        Shape::Walk => {
            query.push("SELECT ").push(&outputs);
            query.push(" FROM (SELECT * FROM processed_data WHERE is_active");
            push_position(&mut query, request);
            query.push(format_args!(
                " ORDER BY {col} {dir}, inner_id {dir} LIMIT {WALK_ROWS}) AS walk WHERE true"
            ));
            push_filters(&mut query, &request.filter, Test::Columns);
        }
        Shape::Matching => {
            query.push(
                "WITH matching AS MATERIALIZED (SELECT * FROM processed_data WHERE is_active",
            );
            push_filters(&mut query, &request.filter, Test::Terms);
            push_position(&mut query, request);
            query.push(format_args!(") SELECT {outputs} FROM matching"));
        }
    }
    query.push(format_args!(" ORDER BY {col} {dir}, inner_id {dir} LIMIT "));
    query.push_bind(i64::from(request.limit) + 1);
    query
}

/// `AND <sort column> IS NOT NULL`, and after the cursor's position.
fn push_position(query: &mut QueryBuilder<'static, Postgres>, request: &PageRequest) {
    query.push(format_args!(" AND {} IS NOT NULL", request.sort.column()));
    if let Some(Position {
        value: Some(value),
        inner_id,
    }) = &request.after
    {
        query.push(format_args!(
            " AND ({}, inner_id) {} (",
            request.sort.column(),
            request.direction.after()
        ));
        match value {
            SortValue::Number(n) => query.push_bind(*n),
            SortValue::Time(t) => query.push_bind(*t),
        };
        query.push(", ").push_bind(inner_id.clone()).push(")");
    }
}

/// The statement for the offers without a value for the sort column, which
/// come last; `missing` of them at most.
fn null_tail_statement(
    request: &PageRequest,
    prefix: &str,
    missing: i64,
) -> QueryBuilder<'static, Postgres> {
    let mut query = select(request, prefix);
    query.push(format_args!(" AND {} IS NULL", request.sort.column()));
    if let Some(Position {
        value: None,
        inner_id,
    }) = &request.after
    {
        query.push(format_args!(" AND inner_id {} ", request.direction.after()));
        query.push_bind(inner_id.clone());
    }
    query.push(format_args!(
        " ORDER BY inner_id {} LIMIT ",
        request.direction.sql()
    ));
    query.push_bind(missing);
    query
}

/// The plans of a page's statements (the first one in every shape it may
/// take, then the NULL tail), as `EXPLAIN` prints them with the page's
/// values (custom plans), for the tests that check every filter is served
/// by an index.
pub async fn explain(
    conn: &mut PgConnection,
    request: &PageRequest,
) -> Result<Vec<(String, String)>, DbError> {
    let want = i64::from(request.limit) + 1;
    let mut plans = Vec::new();
    for shape in Shape::of(request) {
        let lines: Vec<String> = first_statement(request, "EXPLAIN ", *shape)
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        plans.push((format!("{shape:?}"), lines.join("\n")));
    }
    let tail: Vec<String> = null_tail_statement(request, "EXPLAIN ", want)
        .build_query_scalar()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
    plans.push(("null tail".to_owned(), tail.join("\n")));
    Ok(plans)
}

/// The generic plans (blind to the values) of a page's statements that
/// Postgres may cache ([`Planning::Cached`]), as `EXPLAIN` prints them:
/// each statement is run once on `conn` as the page runs it (so prepared
/// there with the page's parameter types), then explained by its prepared
/// name under `plan_cache_mode = force_generic_plan` (Postgres 15 has no
/// `EXPLAIN (GENERIC_PLAN)`).
pub async fn explain_generic(
    conn: &mut PgConnection,
    request: &PageRequest,
) -> Result<Vec<(String, String)>, DbError> {
    let mut plans = Vec::new();
    for shape in Shape::of(request) {
        if shape.planning() != Planning::Cached {
            continue;
        }
        let mut query = first_statement(request, "", *shape);
        let sql = query.sql().to_owned();
        query.build().execute(&mut *conn).await?;
        let (name, params): (String, i32) = sqlx::query_as(
            "SELECT name, cardinality(parameter_types) FROM pg_prepared_statements
             WHERE statement = $1 LIMIT 1",
        )
        .bind(&sql)
        .fetch_one(&mut *conn)
        .await?;
        // A generic plan is made without the values: NULL stands for each.
        let values = vec!["NULL"; params as usize].join(", ");
        sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *conn)
            .await?;
        let explain = format!("EXPLAIN EXECUTE {name}({values})");
        let lines: Result<Vec<String>, _> = sqlx::query_scalar(&explain)
            .persistent(false)
            .fetch_all(&mut *conn)
            .await;
        sqlx::query("RESET plan_cache_mode")
            .execute(&mut *conn)
            .await?;
        plans.push((format!("{shape:?}"), lines?.join("\n")));
    }
    Ok(plans)
}

/// The sort value's output columns: `n` (numbers) and `t` (times).
const fn sort_outputs(sort: SortKey) -> (&'static str, &'static str) {
    match sort {
        SortKey::Price => ("price", "NULL::timestamptz"),
        SortKey::Year => ("year::bigint", "NULL::timestamptz"),
        SortKey::KmAge => ("km_age::bigint", "NULL::timestamptz"),
        SortKey::ListedAt => ("NULL::bigint", "listed_at"),
    }
}

/// `SELECT ... WHERE is_active AND <filters>`, ready for more conditions.
fn select(request: &PageRequest, prefix: &str) -> QueryBuilder<'static, Postgres> {
    let (n, t) = sort_outputs(request.sort);
    let mut query = QueryBuilder::new(format!(
        "{prefix}SELECT inner_id, {n} AS n, {t} AS t, record::text AS record
         FROM processed_data WHERE is_active"
    ));
    push_filters(&mut query, &request.filter, Test::Terms);
    query
}

/// How a statement tests the equality filters but mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    /// Against the offer's filter terms, so their GIN index (0008) finds
    /// the matches.
    Terms,
    /// Column by column, on rows already in hand (the walk), where no index
    /// helps: building every walked row's terms array cost more than the
    /// walk itself (a rare value walks 5,000 rows).
    Columns,
}

fn push_filters(query: &mut QueryBuilder<'static, Postgres>, f: &OfferFilter, test: Test) {
    // mark: the (lower(mark), sort column) indexes of 0004. Each value is
    // its own bind inside lower(), which a custom plan folds to a constant,
    // so the planner sees the values themselves.
    if !f.mark.is_empty() {
        query.push(" AND lower(mark) IN (");
        let mut values = query.separated(", ");
        for mark in &f.mark {
            values.push("lower(");
            values.push_bind_unseparated(mark.clone());
            values.push_unseparated(")");
        }
        query.push(")");
    }
    // model with mark: the (lower(mark), lower(model)) index of 0001.
    let model_with_mark = !f.mark.is_empty() && !f.model.is_empty();
    if model_with_mark {
        query.push(" AND lower(model) IN (");
        let mut values = query.separated(", ");
        for model in &f.model {
            values.push("lower(");
            values.push_bind_unseparated(model.clone());
            values.push_unseparated(")");
        }
        query.push(")");
    }
    // The rest: the filter terms' GIN index (0008). One value: the terms
    // contain it; several: they contain any of them.
    let no_values = Vec::new();
    let terms = [
        (
            "model",
            if model_with_mark {
                &no_values
            } else {
                &f.model
            },
            true,
        ),
        ("city", &f.city, true),
        ("body_type", &f.body_type, false),
        ("engine_type", &f.engine_type, false),
        ("transmission_type", &f.transmission_type, false),
        ("drive_type", &f.drive_type, false),
        ("seller_type", &f.seller_type, false),
    ];
    for (name, values, fold_case) in terms {
        if values.is_empty() {
            continue;
        }
        if test == Test::Columns {
            // The same test as the terms': equal (without case for model
            // and city) to one of the values; NULL matches none.
            let column = if fold_case {
                format!("lower({name})")
            } else {
                name.to_owned()
            };
            query.push(format_args!(" AND {column} IN ("));
            let mut items = query.separated(", ");
            for value in values {
                items.push(if fold_case { "lower(" } else { "" });
                items.push_bind_unseparated(value.clone());
                items.push_unseparated("::text");
                if fold_case {
                    items.push_unseparated(")");
                }
            }
            query.push(")");
            continue;
        }
        let op = if values.len() == 1 { "@>" } else { "&&" };
        query.push(format_args!(" AND {TERMS} {op} ARRAY["));
        let mut items = query.separated(", ");
        for value in values {
            items.push(format_args!("'{name}=' || "));
            if fold_case {
                items.push_unseparated("lower(");
            }
            items.push_bind_unseparated(value.clone());
            items.push_unseparated("::text");
            if fold_case {
                items.push_unseparated(")");
            }
        }
        query.push("]");
    }
    match (f.is_dealer, test) {
        (Some(is_dealer), Test::Terms) => {
            query.push(format_args!(
                " AND {TERMS} @> ARRAY['is_dealer={is_dealer}']"
            ));
        }
        (Some(is_dealer), Test::Columns) => {
            query.push(format_args!(" AND is_dealer = {is_dealer}"));
        }
        (None, _) => {}
    }
    let ranges = [
        ("year", ">=", f.year_from.map(i64::from)),
        ("year", "<=", f.year_to.map(i64::from)),
        ("price", ">=", f.price_from),
        ("price", "<=", f.price_to),
        ("km_age", "<=", f.km_age_to.map(i64::from)),
    ];
    for (column, op, value) in ranges {
        if let Some(value) = value {
            // Bound as bigint; integer columns compare with it exactly.
            query.push(format_args!(" AND {column} {op} "));
            query.push_bind(value);
        }
    }
}

/// One active offer's whole record as JSON text; None when unknown or inactive.
pub async fn record(db: impl PgExecutor<'_>, inner_id: &str) -> Result<Option<String>, DbError> {
    let record = sqlx::query_scalar(
        "SELECT record::text FROM processed_data WHERE inner_id = $1 AND is_active",
    )
    .bind(inner_id)
    .fetch_optional(db)
    .await?;
    Ok(record)
}

/// One row of the filter facets (see facets.sql).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FacetRow {
    /// `model`, `body_type`, `engine_type`, `transmission_type`,
    /// `drive_type`, `seller_type`, `city`, or `total` (the ranges).
    pub facet: String,
    /// For `model` rows: the mark the model belongs to.
    pub mark: Option<String>,
    pub value: Option<String>,
    pub count: i64,
    pub year_min: Option<i32>,
    pub year_max: Option<i32>,
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    pub km_age_max: Option<i32>,
}

/// Every facet of the active offers, with counts, in one statement.
pub async fn facets(db: impl PgExecutor<'_>) -> Result<Vec<FacetRow>, DbError> {
    let rows = sqlx::query_as(include_str!("facets.sql"))
        .fetch_all(db)
        .await?;
    Ok(rows)
}
