//! Failed sign-ins, counted per client address in the database (so every process serving one
//! database shares the count): more than `access.max_failures` within `access.window_secs`
//! lock the address out for `access.lockout_secs`, during which every sign-in from it — the
//! web form or a bearer token, right or wrong — is refused with [`Error::RateLimited`].
//!
//! Sign-in is by token (there are no user names or passwords), so a failed attempt names no
//! account: the address is the only key. A correct sign-in does not clear the count, so an
//! attacker holding one valid token cannot reset it between guesses.

use std::future::Future;

use crate::config::AccessConfig;
use crate::error::{Error, Result};
use crate::store::{Db, now_ms};

/// Runs `sign_in` for `client` unless the address is locked out; a failure
/// ([`Error::Unauthenticated`]) is counted and may lock it.
pub async fn attempt<T>(
    db: &Db,
    config: &AccessConfig,
    client: &str,
    sign_in: impl Future<Output = Result<T>>,
) -> Result<T> {
    refuse_if_locked(db, client).await?;
    match sign_in.await {
        Err(Error::Unauthenticated(why)) => {
            record_failure(db, config, client).await?;
            Err(Error::Unauthenticated(why))
        }
        other => other,
    }
}

/// `Err(RateLimited)` while `client` is locked out.
pub async fn refuse_if_locked(db: &Db, client: &str) -> Result<()> {
    let locked_until: Option<i64> =
        sqlx::query_scalar("SELECT locked_until FROM sign_in_failures WHERE client = $1")
            .bind(client)
            .fetch_optional(db.pool())
            .await?;
    let left_ms = locked_until.unwrap_or(0) - now_ms();
    if left_ms <= 0 {
        return Ok(());
    }
    let retry_after_secs = (left_ms as u64).div_ceil(1000);
    Err(Error::RateLimited {
        message: format!(
            "too many failed sign-ins from {client}: try again in {} minute(s), with a valid \
             token (an administrator issues one with `dealdesk users token NAME`)",
            retry_after_secs.div_ceil(60)
        ),
        retry_after_secs,
    })
}

/// Counts a failed sign-in of `client` (a new window when the last one passed) and locks the
/// address when it reaches the limit. Each statement is atomic on its row, so processes
/// counting at once lose no failure.
async fn record_failure(db: &Db, config: &AccessConfig, client: &str) -> Result<()> {
    let now = now_ms();
    let window_opened_before = now - (config.window_secs as i64) * 1000;
    sqlx::query(
        "DELETE FROM sign_in_failures WHERE window_start <= $1 AND locked_until <= $2 \
         AND client <> $3",
    )
    .bind(window_opened_before)
    .bind(now)
    .bind(client)
    .execute(db.pool())
    .await?;
    sqlx::query(
        "INSERT INTO sign_in_failures (client, failures, window_start, locked_until) \
         VALUES ($1, 0, $2, 0) ON CONFLICT (client) DO NOTHING",
    )
    .bind(client)
    .bind(now)
    .execute(db.pool())
    .await?;
    sqlx::query(
        "UPDATE sign_in_failures SET \
         failures = CASE WHEN window_start <= $2 THEN 1 ELSE failures + 1 END, \
         window_start = CASE WHEN window_start <= $2 THEN $3 ELSE window_start END \
         WHERE client = $1",
    )
    .bind(client)
    .bind(window_opened_before)
    .bind(now)
    .execute(db.pool())
    .await?;
    let locked = sqlx::query(
        "UPDATE sign_in_failures SET locked_until = $2, failures = 0, window_start = $3 \
         WHERE client = $1 AND failures >= $4",
    )
    .bind(client)
    .bind(now + (config.lockout_secs as i64) * 1000)
    .bind(now)
    .bind(i64::from(config.max_failures.max(1)))
    .execute(db.pool())
    .await?
    .rows_affected();
    if locked > 0 {
        tracing::warn!(client, "too many failed sign-ins: address locked out");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{self, Role};

    fn limits(max_failures: u32, lockout_secs: u64) -> AccessConfig {
        AccessConfig {
            max_failures,
            window_secs: 600,
            lockout_secs,
            ..AccessConfig::default()
        }
    }

    #[tokio::test]
    async fn an_address_is_locked_after_too_many_failures_and_others_are_not() {
        let (_dir, db) = crate::store::temp_db().await;
        let good = users::add(&db, "Ana", Role::Rep, "emea")
            .await
            .unwrap()
            .token;
        let config = limits(3, 60);
        let sign_in = |client: &'static str, token: String| {
            let (db, config) = (db.clone(), config.clone());
            async move { attempt(&db, &config, client, users::authenticate(&db, &token)).await }
        };
        // A right token does not count; two wrong ones do not lock yet.
        assert!(sign_in("10.0.0.1", good.clone()).await.is_ok());
        for _ in 0..2 {
            let e = sign_in("10.0.0.1", "ddk_wrong".into()).await.unwrap_err();
            assert!(matches!(e, Error::Unauthenticated(_)), "{e}");
        }
        assert!(sign_in("10.0.0.1", good.clone()).await.is_ok());
        // The third failure locks: every token is refused, with the time left.
        let third = sign_in("10.0.0.1", "ddk_wrong".into()).await.unwrap_err();
        assert!(matches!(third, Error::Unauthenticated(_)));
        for token in ["ddk_wrong".to_string(), good.clone()] {
            match sign_in("10.0.0.1", token).await.unwrap_err() {
                Error::RateLimited {
                    retry_after_secs, ..
                } => assert!((59..=60).contains(&retry_after_secs)),
                e => panic!("expected a lockout, got {e}"),
            }
        }
        // Another address is not affected.
        assert!(sign_in("10.0.0.2", good.clone()).await.is_ok());
        // When the lockout ends the address may try again, with a fresh count.
        sqlx::query("UPDATE sign_in_failures SET locked_until = $1")
            .bind(now_ms() - 1)
            .execute(db.pool())
            .await
            .unwrap();
        assert!(sign_in("10.0.0.1", good.clone()).await.is_ok());
        let e = sign_in("10.0.0.1", "ddk_wrong".into()).await.unwrap_err();
        assert!(matches!(e, Error::Unauthenticated(_)));
    }

    #[tokio::test]
    async fn failures_older_than_the_window_start_a_new_count() {
        let (_dir, db) = crate::store::temp_db().await;
        let config = limits(2, 60);
        let fail = || attempt(&db, &config, "c", users::authenticate(&db, "ddk_x"));
        assert!(matches!(fail().await, Err(Error::Unauthenticated(_))));
        sqlx::query("UPDATE sign_in_failures SET window_start = $1")
            .bind(now_ms() - 601_000)
            .execute(db.pool())
            .await
            .unwrap();
        // The old failure no longer counts: this one starts a new window and does not lock.
        assert!(matches!(fail().await, Err(Error::Unauthenticated(_))));
        assert!(refuse_if_locked(&db, "c").await.is_ok());
        assert!(matches!(fail().await, Err(Error::Unauthenticated(_))));
        assert!(matches!(
            refuse_if_locked(&db, "c").await,
            Err(Error::RateLimited { .. })
        ));
    }
}
