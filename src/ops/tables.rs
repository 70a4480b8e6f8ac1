//! The database's tables as data: the schema read from the catalog (SQLite's `sqlite_master`
//! and `pragma_table_info`, PostgreSQL's `information_schema`), ordered so that a table comes
//! after every table it references, and rows moved as typed values (one JSON array per row).
//! This is how a backup exports and a restore loads every table on either backend.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::{Error, Result};
use crate::store::Backend;

/// How a column's values are stored and moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Int,
    Real,
    Bool,
    Bytes,
    Text,
}

impl Kind {
    /// The kind of a declared SQL type (SQLite's affinity rules, PostgreSQL's type names).
    fn of_declared(declared: &str) -> Kind {
        let t = declared.to_ascii_uppercase();
        if t.contains("INT") {
            Kind::Int
        } else if t.contains("BOOL") {
            Kind::Bool
        } else if ["REAL", "FLOA", "DOUB"].iter().any(|k| t.contains(k)) {
            Kind::Real
        } else if t.contains("BLOB") || t.contains("BYTEA") {
            Kind::Bytes
        } else {
            Kind::Text
        }
    }
}

/// A column: its name and kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

/// A table and its columns in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
}

/// The migrations' bookkeeping table: each database keeps its own.
pub const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// An identifier quoted for SQL (both backends use double quotes).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every table of the database except [`MIGRATIONS_TABLE`], each after the tables it
/// references, so rows can be inserted in this order and deleted in the reverse one.
pub async fn catalog(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<Table>> {
    let (tables_sql, columns_sql, parents_sql) = match backend {
        Backend::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> $1 ORDER BY name",
            "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)",
        ),
        Backend::Postgres => (
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             AND table_name <> $1 ORDER BY 1",
            "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name = $1 ORDER BY ordinal_position",
            "SELECT DISTINCT CAST(ccu.table_name AS TEXT) \
             FROM information_schema.table_constraints tc \
             JOIN information_schema.constraint_column_usage ccu \
               ON ccu.constraint_name = tc.constraint_name \
              AND ccu.constraint_schema = tc.constraint_schema \
             WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema() \
             AND tc.table_name = $1",
        ),
    };
    let names: Vec<String> = sqlx::query_scalar(tables_sql)
        .bind(MIGRATIONS_TABLE)
        .fetch_all(&mut *conn)
        .await?;
    let mut tables = BTreeMap::new();
    let mut parents = BTreeMap::new();
    for name in names {
        let columns = sqlx::query(columns_sql)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(Column {
                    name: r.try_get(0)?,
                    kind: Kind::of_declared(&r.try_get::<String, _>(1)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: BTreeSet<String> = sqlx::query_scalar(parents_sql)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .filter(|p: &String| *p != name)
            .collect();
        parents.insert(name.clone(), refs);
        tables.insert(name.clone(), Table { name, columns });
    }
    // Kahn's algorithm over the names in order, so the result is deterministic.
    let mut ordered = Vec::with_capacity(tables.len());
    while !tables.is_empty() {
        let ready: Vec<String> = tables
            .keys()
            .filter(|name| parents[*name].iter().all(|p| !tables.contains_key(p)))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(Error::Internal(format!(
                "the tables {:?} reference each other in a cycle",
                tables.keys().collect::<Vec<_>>()
            )));
        }
        for name in ready {
            ordered.extend(tables.remove(&name));
        }
    }
    Ok(ordered)
}

/// Writes every row of `table` to `out`, one JSON array a line in column order, sorted by
/// the columns; returns the row count.
pub async fn export(conn: &mut AnyConnection, table: &Table, out: &mut dyn Write) -> Result<u64> {
    let columns: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
    let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        quote(&table.name),
        order.join(", ")
    );
    let mut rows = sqlx::query(&sql).fetch(&mut *conn);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        let values = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| cell(&row, i, c.kind))
            .collect::<Result<Vec<_>>>()?;
        let line = serde_json::to_string(&values).expect("JSON values serialize");
        writeln!(out, "{line}").map_err(|e| Error::io("cannot write a table export", "", e))?;
        count += 1;
    }
    Ok(count)
}

/// One value of a row as JSON: numbers, booleans, text, bytes as hex, SQL NULL as null.
fn cell(row: &AnyRow, i: usize, kind: Kind) -> Result<Value> {
    Ok(match kind {
        Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
        Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::from),
        Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::from),
        Kind::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)?
            .map(|b| Value::from(hex::encode(b))),
        Kind::Real => match row.try_get::<Option<f64>, _>(i)? {
            None => None,
            Some(f) => Some(Value::Number(serde_json::Number::from_f64(f).ok_or_else(
                || Error::Internal(format!("column {i} holds {f}, which JSON cannot carry")),
            )?)),
        },
    }
    .unwrap_or(Value::Null))
}

/// Inserts the rows of an [`export`] of `table` read from `input`; returns the row count.
pub async fn import(
    conn: &mut AnyConnection,
    table: &Table,
    input: &mut dyn BufRead,
) -> Result<u64> {
    let columns: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(&table.name),
        columns.join(", "),
        params.join(", ")
    );
    let bad = |line: u64, what: &str| {
        Error::InvalidInput(format!(
            "table {} line {line} of the backup: {what}",
            table.name
        ))
    };
    let mut count = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let n = input
            .read_line(&mut line)
            .map_err(|e| Error::io("cannot read a table export", "", e))?;
        if n == 0 {
            return Ok(count);
        }
        count += 1;
        let values: Vec<Value> =
            serde_json::from_str(&line).map_err(|e| bad(count, &e.to_string()))?;
        if values.len() != table.columns.len() {
            return Err(bad(count, "wrong number of values"));
        }
        let mut query = sqlx::query(&sql);
        for (c, v) in table.columns.iter().zip(values) {
            let wrong = || bad(count, &format!("{} is not a {:?} value", c.name, c.kind));
            query = match (c.kind, v) {
                (Kind::Int, Value::Null) => query.bind(None::<i64>),
                (Kind::Real, Value::Null) => query.bind(None::<f64>),
                (Kind::Bool, Value::Null) => query.bind(None::<bool>),
                (Kind::Bytes, Value::Null) => query.bind(None::<Vec<u8>>),
                (Kind::Text, Value::Null) => query.bind(None::<String>),
                (Kind::Int, v) => query.bind(v.as_i64().ok_or_else(wrong)?),
                (Kind::Real, v) => query.bind(v.as_f64().ok_or_else(wrong)?),
                (Kind::Bool, v) => query.bind(v.as_bool().ok_or_else(wrong)?),
                (Kind::Bytes, Value::String(h)) => {
                    query.bind(hex::decode(&h).map_err(|_| wrong())?)
                }
                (Kind::Text, Value::String(s)) => query.bind(s),
                _ => return Err(wrong()),
            };
        }
        query.execute(&mut *conn).await?;
    }
}

/// The number of rows in each table.
pub async fn counts(conn: &mut AnyConnection, tables: &[Table]) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(&t.name)))
            .fetch_one(&mut *conn)
            .await?;
        out.push((t.name.clone(), n));
    }
    Ok(out)
}

/// Deletes every row of `tables`, children first.
pub async fn clear(conn: &mut AnyConnection, tables: &[Table]) -> Result<()> {
    for t in tables.iter().rev() {
        sqlx::query(&format!("DELETE FROM {}", quote(&t.name)))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// One applied migration: version and the checksum of its SQL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub checksum: String,
    /// False when it failed half-way (only possible for a migration outside a transaction).
    pub success: bool,
}

/// The migrations recorded in the database (none when it was never migrated).
pub async fn applied_migrations(
    conn: &mut AnyConnection,
    backend: Backend,
) -> Result<Vec<AppliedMigration>> {
    let exists_sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let exists: i64 = sqlx::query_scalar(exists_sql)
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&mut *conn)
        .await?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT version, checksum, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) \
         FROM {MIGRATIONS_TABLE} ORDER BY version"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let version = r.try_get(0)?;
            let checksum: Vec<u8> = r.try_get(1)?;
            Ok(AppliedMigration {
                version,
                checksum: hex::encode(crate::store::source_checksum(backend, version, &checksum)),
                success: r.try_get::<i64, _>(2)? == 1,
            })
        })
        .collect()
}

/// The migrations built into this binary, as [`applied_migrations`] lists them once applied.
pub fn known_migrations() -> Vec<AppliedMigration> {
    crate::store::migrations()
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| AppliedMigration {
            version: m.version,
            checksum: hex::encode(&m.checksum),
            success: true,
        })
        .collect()
}
