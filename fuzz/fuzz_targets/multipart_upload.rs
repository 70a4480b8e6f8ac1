//! The multipart upload parsers, over raw bodies: `POST /calls` (`http::calls::read_upload`:
//! the form fields, the `file` field streamed out chunk by chunk) and the new-tender form of
//! `POST /app/bids` (`web::bids::read_tender_form`, which reads a tender file's text).
//! Input: the boundary on the first line, then the body.
#![no_main]
use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{Request, header};
use dealdesk::Error;
use dealdesk::http::calls::read_upload;
use dealdesk::web::bids::read_tender_form;
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

async fn multipart(boundary: &str, body: &[u8]) -> Option<Multipart> {
    let request = Request::builder()
        .method("POST")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body.to_vec()))
        .ok()?;
    Multipart::from_request(request, &()).await.ok()
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let Ok(boundary) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let body = data.get(split + 1..).unwrap_or_default();
    RUNTIME.block_on(async {
        if let Some(mut m) = multipart(boundary, body).await {
            let read = read_upload(&mut m, |mut field| {
                Box::pin(async move {
                    let mut bytes = 0usize;
                    while let Some(chunk) = field
                        .chunk()
                        .await
                        .map_err(|e| Error::InvalidInput(e.to_string()))?
                    {
                        bytes += chunk.len();
                    }
                    Ok(bytes)
                })
            })
            .await;
            if let Ok((_, Some(bytes))) = read {
                assert!(bytes <= body.len());
            }
        }
        if let Some(m) = multipart(boundary, body).await {
            if let Ok(form) = read_tender_form(m).await {
                let _ = form.tender();
            }
        }
    });
});
