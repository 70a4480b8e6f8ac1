//! The app's CSS and JavaScript, built into the binary and served with long-lived cache
//! headers: their URLs carry a hash of the content (`/static/app.css?v=…`), so a new build
//! changes the URL and browsers never use a stale copy.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// First 16 hex digits of the content's sha256.
    hash: String,
    url: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        (
            "app.css",
            "text/css; charset=utf-8",
            include_bytes!("../../static/app.css").as_slice(),
        ),
        (
            "app.js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../static/app.js").as_slice(),
        ),
    ]
    .into_iter()
    .map(|(name, content_type, bytes)| {
        let hash = hex::encode(&Sha256::digest(bytes)[..8]);
        Asset {
            name,
            content_type,
            bytes,
            url: format!("/static/{name}?v={hash}"),
            hash,
        }
    })
    .collect()
});

/// The versioned URL of an asset.
pub fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map_or("", |a| a.url.as_str())
}

/// `GET /static/{name}`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let etag = format!("\"{}\"", asset.hash);
    let cache = [
        (
            CACHE_CONTROL,
            "public, max-age=31536000, immutable".to_string(),
        ),
        (ETAG, etag.clone()),
    ];
    if headers
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
}
