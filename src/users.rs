//! Users, their roles and regions, and API tokens.
//!
//! A token is 32 random bytes shown once when it is created; only its sha256 is stored, so a
//! leaked database does not leak credentials. A token is high-entropy, so a fast hash is
//! enough (no password-style key stretching is needed).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::{Error, Result};
use crate::store::{Db, new_id, now_ms};

pub mod throttle;

/// What a user may do. Every HTTP route declares the roles allowed to call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A sales rep: uploads calls, sees their own.
    Rep,
    /// A bid-team member: works the bid library and tender drafts.
    Bid,
    /// A manager: reviews recommendations for their region.
    Manager,
    /// An administrator: users, rules, operations.
    Admin,
}

impl Role {
    /// Every role, for listings and the access-matrix test.
    pub const ALL: [Role; 4] = [Role::Rep, Role::Bid, Role::Manager, Role::Admin];

    /// The lowercase name used in the API, CLI and database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Bid => "bid",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown role {s:?}; use rep, bid, manager or admin"
                ))
            })
    }
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The team or region whose data a manager sees and a rep belongs to.
    pub region: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A newly created user with the token that is shown only this once.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct NewUser {
    pub user: User,
    pub token: String,
}

const TOKEN_PREFIX: &str = "ddk_";

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role.parse()?,
        region: row.try_get("region")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Creates a user with one API token.
pub async fn add(db: &Db, name: &str, role: Role, region: &str) -> Result<NewUser> {
    let name = name.trim();
    let region = region.trim();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidInput(
            "a user name must be 1 to 200 printable characters".into(),
        ));
    }
    if region.is_empty() || region.len() > 100 || region.chars().any(char::is_control) {
        return Err(Error::InvalidInput(
            "a region must be 1 to 100 printable characters".into(),
        ));
    }
    let user = User {
        id: new_id(),
        name: name.to_string(),
        role,
        region: region.to_string(),
        created_at: now_ms(),
        revoked_at: None,
    };
    let mut tx = db.begin().await?;
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
        .bind(&user.name)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(Error::Conflict(format!(
            "a user named {name:?} already exists; pick another name or revoke that one"
        )));
    }
    sqlx::query(
        "INSERT INTO users (id, name, role, region, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(role.as_str())
    .bind(&user.region)
    .bind(user.created_at)
    .execute(&mut *tx)
    .await?;
    let token = insert_token(&mut tx, &user.id).await?;
    tx.commit().await?;
    Ok(NewUser { user, token })
}

/// Issues another API token for an active user (by name or id), e.g. to replace a lost one.
pub async fn issue_token(db: &Db, name_or_id: &str) -> Result<NewUser> {
    let mut tx = db.begin().await?;
    let row =
        sqlx::query("SELECT * FROM users WHERE (name = $1 OR id = $1) AND revoked_at IS NULL")
            .bind(name_or_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no active user named {name_or_id:?}")))?;
    let user = user_from_row(&row)?;
    let token = insert_token(&mut tx, &user.id).await?;
    tx.commit().await?;
    Ok(NewUser { user, token })
}

async fn insert_token(tx: &mut sqlx::Transaction<'_, sqlx::Any>, user_id: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    sqlx::query("INSERT INTO api_tokens (token_sha256, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(token_hash(&token))
        .bind(user_id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(token)
}

/// Every user, oldest first.
pub async fn list(db: &Db) -> Result<Vec<User>> {
    let rows = sqlx::query("SELECT * FROM users ORDER BY created_at, id")
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(user_from_row).collect()
}

/// The active user with this name or id (the CLI acts as a named user).
pub async fn active(db: &Db, name_or_id: &str) -> Result<User> {
    let row =
        sqlx::query("SELECT * FROM users WHERE (name = $1 OR id = $1) AND revoked_at IS NULL")
            .bind(name_or_id)
            .fetch_optional(db.pool())
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no active user named {name_or_id:?}; see `dealdesk users list`"
                ))
            })?;
    user_from_row(&row)
}

/// Revokes a user (by name or id) and all their tokens; their records stay for the audit.
pub async fn revoke(db: &Db, name_or_id: &str) -> Result<User> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let row = sqlx::query("SELECT * FROM users WHERE name = $1 OR id = $1")
        .bind(name_or_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user named {name_or_id:?}")))?;
    let mut user = user_from_row(&row)?;
    sqlx::query("UPDATE users SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    user.revoked_at.get_or_insert(now);
    Ok(user)
}

/// The active user holding `token`, or `Unauthenticated`.
pub async fn authenticate(db: &Db, token: &str) -> Result<User> {
    let rejected = || Error::Unauthenticated("the API token is unknown or revoked".into());
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Err(rejected());
    }
    let row = sqlx::query(
        "SELECT u.* FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND u.revoked_at IS NULL",
    )
    .bind(token_hash(token))
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(rejected)?;
    user_from_row(&row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_authenticate_until_revoked_and_are_stored_hashed() {
        let (_dir, db) = crate::store::temp_db().await;
        let new = add(&db, "Ana", Role::Rep, "emea").await.unwrap();
        assert!(new.token.starts_with("ddk_") && new.token.len() == 68);
        let who = authenticate(&db, &new.token).await.unwrap();
        assert_eq!((who.name.as_str(), who.role), ("Ana", Role::Rep));
        let stored: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM api_tokens")
            .fetch_all(db.pool())
            .await
            .unwrap();
        assert_eq!(stored, vec![token_hash(&new.token)]);
        assert!(!stored[0].contains(&new.token[4..]));
        assert!(matches!(
            add(&db, "Ana", Role::Admin, "x").await,
            Err(Error::Conflict(_))
        ));
        revoke(&db, "Ana").await.unwrap();
        assert!(matches!(
            authenticate(&db, &new.token).await,
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            authenticate(&db, "ddk_nope").await,
            Err(Error::Unauthenticated(_))
        ));
        assert_eq!(list(&db).await.unwrap().len(), 1);
        assert!(matches!(
            issue_token(&db, "Ana").await,
            Err(Error::NotFound(_))
        ));
        let bo = add(&db, "Bo", Role::Manager, "apac").await.unwrap();
        let second = issue_token(&db, "Bo").await.unwrap();
        assert_ne!(second.token, bo.token);
        for t in [&bo.token, &second.token] {
            assert_eq!(authenticate(&db, t).await.unwrap().name, "Bo");
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
