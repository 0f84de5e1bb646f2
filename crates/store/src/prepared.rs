//! Statements prepared once per connection. Diesel keeps a prepared statement for reuse only when
//! its SQL cannot vary: a typed query, or a multi-row insert of a fixed number of rows. A
//! `diesel::sql_query`, an `IN (…)` list or a multi-row insert of any length is parsed and
//! planned again on every call, which on the hot path cost more than running it. So the write
//! path uses only statements of a few fixed shapes:
//! - `Fixed` (SQLite): a constant SQL text whose binds are all text (its JSON arrays);
//! - [`insert_rows!`]: on SQLite one row per insert, always the same statement.

#[cfg(feature = "sqlite")]
pub(crate) use fixed::{Fixed, Sql};

/// Only SQLite's statements need it: PostgreSQL takes arrays.
#[cfg(feature = "sqlite")]
mod fixed {
    use std::marker::PhantomData;

    use diesel::backend::Backend;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::serialize::ToSql;
    use diesel::sql_types::{HasSqlType, Text, Untyped};
    use diesel::{QueryResult, RunQueryDsl};

    /// The text of a [`Fixed`] statement: the SQL around its binds (one part more than binds).
    pub(crate) trait Sql: 'static {
        /// `PARTS[0] bind[0] PARTS[1] bind[1] … PARTS[n]`.
        const PARTS: &'static [&'static str];
    }

    /// A statement of constant text with text binds; loaded into `QueryableByName` rows like a
    /// `diesel::sql_query`, but prepared once per connection (its type is the cache's key).
    pub(crate) struct Fixed<S: Sql> {
        binds: Vec<String>,
        sql: PhantomData<S>,
    }

    impl<S: Sql> Fixed<S> {
        /// The statement with these binds, in order.
        pub(crate) fn new(binds: Vec<String>) -> Self {
            Fixed {
                binds,
                sql: PhantomData,
            }
        }
    }

    impl<S: Sql> QueryId for Fixed<S> {
        type QueryId = S;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl<S: Sql, DB> QueryFragment<DB> for Fixed<S>
    where
        DB: Backend + HasSqlType<Text>,
        String: ToSql<Text, DB>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
            for (i, part) in S::PARTS.iter().enumerate() {
                out.push_sql(part);
                if let Some(bind) = self.binds.get(i) {
                    out.push_bind_param::<Text, String>(bind)?;
                }
            }
            Ok(())
        }
    }

    impl<S: Sql> Query for Fixed<S> {
        type SqlType = Untyped;
    }

    impl<S: Sql, C> RunQueryDsl<C> for Fixed<S> {}
}

/// Rows per multi-row insert on PostgreSQL: well under its 65,535 bound parameters.
#[cfg(feature = "postgres")]
pub(crate) const PG_ROWS_PER_STATEMENT: usize = 2_000;

/// Inserts the rows of `$rows` with `$insert` (an insert of `$values` run on `$c`, a `Result`),
/// the way each backend does it best, and gives the statements' results in a `Vec`:
/// - PostgreSQL: many rows per statement (`$values` is a slice), one round trip each;
/// - SQLite: one row per statement (`$values` is one row), the same text every time, so it is
///   prepared once per connection. A multi-row insert of any length would be parsed again on
///   every call, and SQLite has no round trips to save.
macro_rules! insert_rows {
    ($conn:expr, $rows:expr, |$c:ident, $values:ident| $insert:expr) => {{
        let mut results = Vec::new();
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::db::DbConnection::Pg($c) => {
                for $values in $rows.chunks($crate::prepared::PG_ROWS_PER_STATEMENT) {
                    results.push($insert?);
                }
            }
            #[cfg(feature = "sqlite")]
            $crate::db::DbConnection::Sqlite($c) => {
                for $values in $rows.iter() {
                    results.push($insert?);
                }
            }
        }
        results
    }};
}
pub(crate) use insert_rows;
