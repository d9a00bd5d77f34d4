//! One page of active offers: the statements, their shapes and how
//! Postgres plans them.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use super::{OfferFilter, Page, PageRequest, Position, SortKey, SortValue};
use crate::DbError;

/// The offer's filter terms, exactly as migration 0008 indexes them (GIN).
const TERMS: &str = "api_filter_terms(model, city, body_type, engine_type, \
     transmission_type, drive_type, seller_type, is_dealer)";

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

/// One statement a page may send, for the plan tests: its label (the shape,
/// or "null tail"), how Postgres plans it, and its text with the page's
/// values bound.
pub struct Statement {
    pub label: String,
    pub planning: Planning,
    pub query: QueryBuilder<'static, Postgres>,
}

/// The statements [`page`] may send for `request`, after `prefix`
/// (`EXPLAIN ` to read their plans): the first one in every shape it may
/// take, then the NULL tail (a whole page of it).
pub fn statements(request: &PageRequest, prefix: &str) -> Vec<Statement> {
    let mut statements: Vec<Statement> = Shape::of(request)
        .iter()
        .map(|shape| Statement {
            label: format!("{shape:?}"),
            planning: shape.planning(),
            query: first_statement(request, prefix, *shape),
        })
        .collect();
    statements.push(Statement {
        label: "null tail".to_owned(),
        // As `page` sends it: unnamed, planned with its values.
        planning: Planning::PerValues,
        query: null_tail_statement(request, prefix, i64::from(request.limit) + 1),
    });
    statements
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
