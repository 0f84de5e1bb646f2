//! Statements prepared once per connection. Diesel keeps a prepared statement for reuse only when
//! it can tell that its SQL cannot vary: a typed query of the query builder, or a multi-row insert
//! of a fixed number of rows. A `diesel::sql_query`, a `diesel::dsl::sql` fragment, an `IN (…)`
//! list or a multi-row insert of any length is parsed again on every call, which on SQLite cost
//! more than running it. So the write path uses only statements of fixed text:
//! - [`Fixed`] (written with [`fixed!`]): a statement of constant text whose lists are one bind
//!   each: arrays on PostgreSQL (`= ANY(?)`, `unnest(?)`), JSON text on SQLite (`json_each(?)`);
//! - [`insert_rows!`]: the inserts, in the shape each backend runs best.
//!
//! PostgreSQL still plans each run (`crate::db` asks for custom plans: a generic plan made while
//! the tables were small once turned a look-up into a sequential scan); it is spared the parsing
//! and, for inserts, a statement text per batch size. `tests/prepared.rs` checks that a batch
//! prepares nothing a first one did not.

use std::marker::PhantomData;

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Text, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// The text of a [`Fixed`] statement, its binds written `?` (PostgreSQL gets `$1`, `$2`, …).
pub(crate) trait Sql: 'static {
    /// The statement. No `?` but the binds' (PostgreSQL's jsonb `?` operators are not used).
    const SQL: &'static str;
}

/// One value bound to a [`Fixed`] statement. PostgreSQL takes lists as arrays (`= ANY(?)`,
/// `unnest(?::text[], …)`), SQLite as JSON text (`json_each(?)`).
pub(crate) enum Bind<'a> {
    #[cfg(feature = "sqlite")]
    Text(String),
    BigInt(i64),
    #[cfg(feature = "postgres")]
    Texts(Vec<&'a str>),
    #[cfg(feature = "postgres")]
    OptionalTexts(Vec<Option<&'a str>>),
    #[cfg(feature = "postgres")]
    BigInts(Vec<i64>),
    #[cfg(feature = "postgres")]
    OptionalBigInts(Vec<Option<i64>>),
    #[cfg(feature = "postgres")]
    Integers(Vec<i32>),
    #[cfg(feature = "postgres")]
    OptionalDoubles(Vec<Option<f64>>),
    #[cfg(feature = "postgres")]
    Bools(Vec<bool>),
    #[cfg(feature = "postgres")]
    Timestamps(Vec<NaiveDateTime>),
    #[cfg(feature = "postgres")]
    OptionalTimestamps(Vec<Option<NaiveDateTime>>),
    #[doc(hidden)]
    #[cfg(not(feature = "postgres"))]
    _Unused(PhantomData<&'a NaiveDateTime>),
}

/// A statement of constant text ([`Sql`]) with its binds, loaded into `QueryableByName` rows or
/// executed like a `diesel::sql_query`, but prepared once per connection: Diesel's cache keeps it
/// under its type. (`sql_query` and `dsl::sql` tell Diesel never to keep theirs, as their text
/// could vary.)
pub(crate) struct Fixed<'a, S: Sql> {
    binds: Vec<Bind<'a>>,
    sql: PhantomData<S>,
}

impl<'a, S: Sql> Fixed<'a, S> {
    /// The statement with these binds, in the order of its `?`s.
    pub(crate) fn new(binds: Vec<Bind<'a>>) -> Self {
        Fixed {
            binds,
            sql: PhantomData,
        }
    }
}

impl<S: Sql> QueryId for Fixed<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// Writes `S::SQL` with each `?` replaced by the backend's placeholder for the next bind.
fn walk_parts<'b, DB: Backend>(
    sql: &'static str,
    binds: &'b [Bind<'_>],
    out: &mut AstPass<'_, 'b, DB>,
    mut bind: impl FnMut(&'b Bind<'_>, &mut AstPass<'_, 'b, DB>) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut binds = binds.iter();
    for (i, part) in sql.split('?').enumerate() {
        if i > 0 {
            let value = binds.next().ok_or_else(|| {
                diesel::result::Error::QueryBuilderError("a statement has more ? than binds".into())
            })?;
            bind(value, out)?;
        }
        out.push_sql(part);
    }
    Ok(())
}

#[cfg(feature = "sqlite")]
impl<S: Sql> QueryFragment<diesel::sqlite::Sqlite> for Fixed<'_, S> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::sqlite::Sqlite>) -> QueryResult<()> {
        walk_parts(S::SQL, &self.binds, &mut out, |value, out| match value {
            Bind::Text(v) => out.push_bind_param::<Text, _>(v),
            Bind::BigInt(v) => out.push_bind_param::<BigInt, _>(v),
            #[allow(unreachable_patterns)]
            _ => Err(diesel::result::Error::QueryBuilderError(
                "SQLite takes lists as JSON text".into(),
            )),
        })
    }
}

#[cfg(feature = "postgres")]
impl<S: Sql> QueryFragment<diesel::pg::Pg> for Fixed<'_, S> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, Bool, Double, Integer, Nullable, Timestamp};
        walk_parts(S::SQL, &self.binds, &mut out, |value, out| match value {
            #[cfg(feature = "sqlite")]
            Bind::Text(v) => out.push_bind_param::<Text, _>(v),
            Bind::BigInt(v) => out.push_bind_param::<BigInt, _>(v),
            Bind::Texts(v) => out.push_bind_param::<Array<Text>, _>(v),
            Bind::OptionalTexts(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(v),
            Bind::BigInts(v) => out.push_bind_param::<Array<BigInt>, _>(v),
            Bind::OptionalBigInts(v) => out.push_bind_param::<Array<Nullable<BigInt>>, _>(v),
            Bind::Integers(v) => out.push_bind_param::<Array<Integer>, _>(v),
            Bind::OptionalDoubles(v) => out.push_bind_param::<Array<Nullable<Double>>, _>(v),
            Bind::Bools(v) => out.push_bind_param::<Array<Bool>, _>(v),
            Bind::Timestamps(v) => out.push_bind_param::<Array<Timestamp>, _>(v),
            Bind::OptionalTimestamps(v) => out.push_bind_param::<Array<Nullable<Timestamp>>, _>(v),
        })
    }
}

impl<S: Sql> Query for Fixed<'_, S> {
    type SqlType = Untyped;
}

impl<S: Sql, C> RunQueryDsl<C> for Fixed<'_, S> {}

/// `fixed!("SELECT … WHERE id = ANY(?)", [Bind::Texts(ids)])`: a [`Fixed`] statement of this
/// text, with a type of its own (so a cache key of its own) for each place it is written.
macro_rules! fixed {
    ($sql:expr, [$($bind:expr),* $(,)?]) => {{
        struct Statement;
        impl $crate::prepared::Sql for Statement {
            const SQL: &'static str = $sql;
        }
        $crate::prepared::Fixed::<Statement>::new(vec![$($bind),*])
    }};
}
pub(crate) use fixed;

/// Inserts the rows of `$rows` the way each backend does it best, and gives the statements'
/// results in a `Vec`:
/// - PostgreSQL: `$pg` (a closure of the connection and all the rows), one statement of fixed
///   text for the whole batch, its columns bound as arrays and read back with `unnest`, so it is
///   prepared once per connection (still planned on every run, see above), and one round trip;
/// - SQLite: `$sqlite` (a closure of the connection and one row) for each row, always the same
///   text, so it is prepared once per connection. A multi-row insert of any length would be
///   parsed again on every call, and SQLite has no round trips to save.
macro_rules! insert_rows {
    ($conn:expr, $rows:expr, pg: |$pc:ident, $all:ident| $pg:expr, sqlite: |$sc:ident, $one:ident| $sqlite:expr $(,)?) => {{
        let mut results = Vec::new();
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::db::DbConnection::Pg($pc) => {
                let $all = &$rows[..];
                if !$all.is_empty() {
                    results.push($pg?);
                }
            }
            #[cfg(feature = "sqlite")]
            $crate::db::DbConnection::Sqlite($sc) => {
                for $one in $rows.iter() {
                    results.push($sqlite?);
                }
            }
        }
        results
    }};
}
pub(crate) use insert_rows;

/// One column of `rows`, to bind as an array for `unnest` (PostgreSQL's side of [`insert_rows!`]).
#[cfg(feature = "postgres")]
pub(crate) fn column<'r, R, T>(rows: &'r [R], value: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}
