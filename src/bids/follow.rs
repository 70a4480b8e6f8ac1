//! Keeping this process's bid index current with writes made through any process on the same
//! database, by following the change log (`store::changes`).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use super::{Library, db};
use crate::error::{Error, Result};
use crate::store::changes::{self, Follower};
use crate::store::now_ms;

/// How often the change log is pruned, in polls.
const PRUNE_EVERY: u64 = 1000;

impl Library {
    /// Applies the bid changes logged since `follower`'s last poll that the index does not
    /// have yet (its own writes are already there); returns how many documents changed.
    pub async fn catch_up(&self, follower: &mut Follower) -> Result<usize> {
        let mut latest: HashMap<String, Option<i64>> = HashMap::new();
        for change in follower.poll(&self.db).await? {
            latest.insert(change.entity_id, change.rev);
        }
        // Read everything first: the index writer's lock is not held across awaits.
        let mut apply = Vec::new();
        for (id, rev) in latest {
            let have = self.index.revision_of(&id)?;
            let stored = match rev {
                Some(rev) if have.is_some_and(|h| h >= rev) => continue,
                Some(_) => match db::get(&self.db, &id).await {
                    Ok(stored) => Some(stored),
                    Err(Error::NotFound(_)) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            if stored.is_some() || have.is_some() {
                apply.push((id, stored));
            }
        }
        if apply.is_empty() {
            return Ok(0);
        }
        {
            let mut writer = self.index.writer();
            for (id, stored) in &apply {
                match stored {
                    Some(stored) => self.index.upsert(&writer, &stored.bid, stored.rev)?,
                    None => self.index.delete(&writer, id),
                }
            }
            self.index.commit(&mut writer)?;
        }
        // The dense list follows too (the writer stores its vectors later than the row, so
        // they are computed here rather than waited for).
        if let Some(dense) = &self.dense {
            for (id, stored) in &apply {
                match stored {
                    Some(stored) => dense.put(&self.db, &[(&stored.bid, stored.rev)]).await?,
                    None => dense.delete(&self.db, id).await?,
                }
            }
        }
        Ok(apply.len())
    }

    /// Follows the change log every `period` until `stop` turns true, pruning old entries now
    /// and then. Errors (a database restart, say) are logged and retried at the next poll.
    pub async fn follow_changes(self, period: Duration, mut stop: watch::Receiver<bool>) {
        let mut follower = Follower::new(db::CHANGE_ENTITY, now_ms());
        let mut polls: u64 = 0;
        loop {
            match self.catch_up(&mut follower).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(n, "bid index caught up with the change log"),
                Err(e) => tracing::warn!(error = %e, "following the bid change log failed"),
            }
            if polls.is_multiple_of(PRUNE_EVERY)
                && let Err(e) = changes::prune(&self.db, db::CHANGE_ENTITY, now_ms()).await
            {
                tracing::warn!(error = %e, "pruning the change log failed");
            }
            polls += 1;
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bids::record::read_path;
    use crate::store::temp_db;

    #[tokio::test]
    async fn a_second_process_finds_bids_written_through_the_first() {
        let (dir, db) = temp_db().await;
        let first = Library::open_at(&dir.path().join("a"), db.clone(), None)
            .await
            .unwrap();
        let second = Library::open_at(&dir.path().join("b"), db.clone(), None)
            .await
            .unwrap();
        let mut follows_first = Follower::new(db::CHANGE_ENTITY, now_ms());
        let mut follows_second = Follower::new(db::CHANGE_ENTITY, now_ms());

        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/bids");
        let mut bids = read_path(std::path::Path::new(corpus)).unwrap();
        bids.truncate(3);
        second.import(&bids, &|_| {}).await.unwrap();
        // The writer's own index already has them: nothing to do there.
        assert_eq!(second.catch_up(&mut follows_second).await.unwrap(), 0);
        assert_eq!(first.index.revision_of(&bids[0].id).unwrap(), None);
        assert_eq!(first.catch_up(&mut follows_first).await.unwrap(), 3);
        assert_eq!(first.index.revision_of(&bids[0].id).unwrap(), Some(1));

        second
            .set_outcome(
                &bids[1].id,
                crate::bids::Outcome::Lost,
                Some("too dear"),
                None,
            )
            .await
            .unwrap();
        second.delete(&bids[2].id).await.unwrap();
        assert_eq!(first.catch_up(&mut follows_first).await.unwrap(), 2);
        assert_eq!(first.index.revision_of(&bids[1].id).unwrap(), Some(2));
        assert_eq!(first.index.revision_of(&bids[2].id).unwrap(), None);
        assert_eq!(first.catch_up(&mut follows_first).await.unwrap(), 0);
    }
}
