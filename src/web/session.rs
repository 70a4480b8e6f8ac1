//! Browser sessions: a user signs in with an API token and gets a random session id in an
//! HttpOnly, SameSite=Strict cookie. The database keeps the id's sha256, the session's CSRF
//! token and its expiry. Forms carry the CSRF token in a `csrf` field, scripts in an
//! `X-CSRF-Token` header; before sign-in a pre-session cookie plays the same role
//! (double submit).

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::Result;
use crate::store::{Db, now_ms};
use crate::users::{self, User};

/// The session cookie.
pub const SESSION_COOKIE: &str = "dd_session";
/// The pre-session CSRF cookie of the sign-in form.
pub const PRE_COOKIE: &str = "dd_pre";
/// The language cookie.
pub const LANG_COOKIE: &str = "dd_lang";
/// The header scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub csrf: String,
    pub expires_at: i64,
}

/// 32 random bytes as hex: session ids and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn id_hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Signs in with an API token: a new session of `hours` for its user; returns the session
/// id (for the cookie) and the session. Expired sessions are removed on the way.
pub async fn start(db: &Db, api_token: &str, hours: u64) -> Result<(String, Session)> {
    let user = users::authenticate(db, api_token.trim()).await?;
    let now = now_ms();
    sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    let id = random_token();
    let session = Session {
        user,
        csrf: random_token(),
        expires_at: now + (hours.max(1) as i64) * 3_600_000,
    };
    sqlx::query(
        "INSERT INTO web_sessions (id_sha256, user_id, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id_hash(&id))
    .bind(&session.user.id)
    .bind(&session.csrf)
    .bind(now)
    .bind(session.expires_at)
    .execute(db.pool())
    .await?;
    Ok((id, session))
}

/// The live session with this id: not expired, its user not revoked.
pub async fn find(db: &Db, id: &str) -> Result<Option<Session>> {
    if id.len() != 64 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT s.csrf, s.expires_at, u.name FROM web_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id_sha256 = $1 AND s.expires_at > $2 AND u.revoked_at IS NULL",
    )
    .bind(id_hash(id))
    .bind(now_ms())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let name: String = row.try_get("name")?;
    Ok(Some(Session {
        user: users::active(db, &name).await?,
        csrf: row.try_get("csrf")?,
        expires_at: row.try_get("expires_at")?,
    }))
}

/// Signs out: the session id stops working at once.
pub async fn end(db: &Db, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE id_sha256 = $1")
        .bind(id_hash(id))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when `secure`;
/// `max_age_secs` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a submitted CSRF token equals the expected one, in time that does not depend on
/// where they differ (`subtle`; only the length, which is public, may end it early).
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The `csrf` field of an `application/x-www-form-urlencoded` body (tokens are hex, so no
/// decoding is needed), or of a `multipart/form-data` one (a file upload, which may not be
/// UTF-8; forms put the field first).
pub fn csrf_field(body: &[u8]) -> Option<&str> {
    if let Some(at) = position(body, b"name=\"csrf\"\r\n\r\n") {
        let value = &body[at + 15..];
        return std::str::from_utf8(&value[..position(value, b"\r\n")?]).ok();
    }
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("csrf="))
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Role;

    #[tokio::test]
    async fn a_session_lives_until_it_expires_or_ends_and_stores_only_the_ids_hash() {
        let (_dir, db) = crate::store::temp_db().await;
        let new = users::add(&db, "Ana", Role::Rep, "emea").await.unwrap();
        assert!(start(&db, "ddk_wrong", 12).await.is_err());
        let (id, s) = start(&db, &new.token, 12).await.unwrap();
        assert_eq!(s.user.name, "Ana");
        assert_ne!(id, s.csrf);
        let found = find(&db, &id).await.unwrap().unwrap();
        assert_eq!((found.user.id, found.csrf), (s.user.id.clone(), s.csrf));
        let stored: String = sqlx::query_scalar("SELECT id_sha256 FROM web_sessions")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_ne!(stored, id);
        // Expired: not found.
        sqlx::query("UPDATE web_sessions SET expires_at = $1")
            .bind(now_ms() - 1)
            .execute(db.pool())
            .await
            .unwrap();
        assert!(find(&db, &id).await.unwrap().is_none());
        // A new sign-in removes the expired row; sign-out ends the new session.
        let (id2, _) = start(&db, &new.token, 1).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM web_sessions")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(rows, 1);
        assert!(find(&db, &id2).await.unwrap().is_some());
        end(&db, &id2).await.unwrap();
        assert!(find(&db, &id2).await.unwrap().is_none());
        // A revoked user's session stops working.
        let (id3, _) = start(&db, &new.token, 1).await.unwrap();
        users::revoke(&db, "Ana").await.unwrap();
        assert!(find(&db, &id3).await.unwrap().is_none());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_when_configured() {
        let c = set_cookie(SESSION_COOKIE, "abc", 3600, false);
        assert_eq!(
            c,
            "dd_session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(SESSION_COOKIE, "abc", 3600, true).ends_with("; Secure"));
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; dd_session=xyz; dd_lang=zh".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, LANG_COOKIE).as_deref(), Some("zh"));
        assert_eq!(cookie(&headers, "none"), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let t = random_token();
        assert!(csrf_matches(&t, &t));
        assert!(!csrf_matches(&t, &random_token()));
        assert!(!csrf_matches(&t, &t[..63]));
        assert!(!csrf_matches("", ""));
        assert_eq!(csrf_field(b"a=1&csrf=abc&b=2"), Some("abc"));
        assert_eq!(csrf_field(b"a=1"), None);
        let multipart = b"--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--x\r\n\
            Content-Disposition: form-data; name=\"f\"; filename=\"t.txt\"\r\n\r\n\xff\r\n--x--\r\n";
        assert_eq!(csrf_field(multipart), Some("abc"));
    }
}
