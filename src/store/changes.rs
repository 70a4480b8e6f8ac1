//! The change log: how processes sharing one database keep their derived indexes current.
//!
//! A write to a table that an index is derived from appends `(entity, id, revision)` in the
//! same transaction ([`record`]); each process runs a [`Follower`] that returns the entries it
//! has not seen yet. Entries are stamped with the writer's clock when its transaction started,
//! so one can commit after a later-stamped one is already visible: the follower therefore
//! re-reads a short window behind the newest entry it has seen and remembers which entries in
//! that window it already returned.

use std::collections::HashSet;

use sqlx::{Any, Transaction};

use crate::error::Result;
use crate::store::{Db, new_id};

/// How far behind the newest seen entry a poll looks again, for transactions that committed
/// late (longer than any write transaction of the product takes).
pub const LATE_COMMIT_MS: i64 = 10_000;

/// How long entries are kept; a process down for longer rebuilds its index when it opens.
pub const KEEP_MS: i64 = 24 * 3600 * 1000;

/// One change: the entity's id and its new revision (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub entity_id: String,
    pub rev: Option<i64>,
}

/// Appends a change of `entity` `entity_id` to the log, inside the writer's transaction.
pub async fn record(
    tx: &mut Transaction<'_, Any>,
    entity: &str,
    entity_id: &str,
    rev: Option<i64>,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO change_log (id, entity, entity_id, rev, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(new_id())
    .bind(entity)
    .bind(entity_id)
    .bind(rev)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes entries of `entity` older than [`KEEP_MS`] before `now`.
pub async fn prune(db: &Db, entity: &str, now: i64) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM change_log WHERE entity = $1 AND at < $2")
            .bind(entity)
            .bind(now - KEEP_MS)
            .execute(db.pool())
            .await?
            .rows_affected(),
    )
}

/// Follows the log of one entity from a point in time.
#[derive(Debug)]
pub struct Follower {
    entity: &'static str,
    /// The newest `at` seen so far.
    newest: i64,
    /// Entries already returned whose `at` is still inside the re-read window.
    returned: HashSet<(String, i64)>,
}

impl Follower {
    /// A follower that returns the changes stamped after `since` (minus the late-commit window).
    pub fn new(entity: &'static str, since: i64) -> Follower {
        Follower {
            entity,
            newest: since,
            returned: HashSet::new(),
        }
    }

    /// The changes not returned before, oldest first.
    pub async fn poll(&mut self, db: &Db) -> Result<Vec<Change>> {
        let from = self.newest - LATE_COMMIT_MS;
        let rows: Vec<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT id, entity_id, rev, at FROM change_log WHERE entity = $1 AND at >= $2 \
             ORDER BY at, id",
        )
        .bind(self.entity)
        .bind(from)
        .fetch_all(db.pool())
        .await?;
        let mut changes = Vec::new();
        for (id, entity_id, rev, at) in rows {
            self.newest = self.newest.max(at);
            if self.returned.insert((id, at)) {
                changes.push(Change { entity_id, rev });
            }
        }
        let window_start = self.newest - LATE_COMMIT_MS;
        self.returned.retain(|(_, at)| *at >= window_start);
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_db;

    async fn write(db: &Db, entity_id: &str, rev: Option<i64>, at: i64) {
        let mut tx = db.begin().await.unwrap();
        record(&mut tx, "bid", entity_id, rev, at).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn each_change_is_returned_once_even_when_it_commits_late() {
        let (_dir, db) = temp_db().await;
        let mut follower = Follower::new("bid", 1_000_000);
        write(&db, "a", Some(1), 1_000_100).await;
        write(&db, "a", Some(2), 1_000_200).await;
        assert_eq!(
            follower.poll(&db).await.unwrap(),
            [
                Change {
                    entity_id: "a".into(),
                    rev: Some(1)
                },
                Change {
                    entity_id: "a".into(),
                    rev: Some(2)
                },
            ]
        );
        assert!(follower.poll(&db).await.unwrap().is_empty());
        // A transaction stamped before the newest entry seen, visible only now.
        write(&db, "b", None, 1_000_150).await;
        assert_eq!(
            follower.poll(&db).await.unwrap(),
            [Change {
                entity_id: "b".into(),
                rev: None
            }]
        );
        // Other entities' changes are not this follower's.
        let mut tx = db.begin().await.unwrap();
        record(&mut tx, "call", "c", Some(1), 1_000_300)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(follower.poll(&db).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn old_entries_are_pruned() {
        let (_dir, db) = temp_db().await;
        let now = 10 * KEEP_MS;
        write(&db, "old", Some(1), now - KEEP_MS - 1).await;
        write(&db, "new", Some(1), now - 1).await;
        assert_eq!(prune(&db, "bid", now).await.unwrap(), 1);
        let mut follower = Follower::new("bid", 0);
        let left = follower.poll(&db).await.unwrap();
        assert_eq!(
            left,
            [Change {
                entity_id: "new".into(),
                rev: Some(1)
            }]
        );
    }
}
