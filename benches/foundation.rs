//! Hot paths every request and upload goes through, on a real SQLite file:
//! token authentication, durable job enqueue, and streaming a 1 MiB upload into the blob store.
//!
//! `cargo bench --bench foundation`; results are recorded in `eval/reports/foundation.md`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dealdesk::config::JobsConfig;
use dealdesk::jobs::JobQueue;
use dealdesk::store::Db;
use dealdesk::store::blobs::BlobStore;
use dealdesk::users::{self, Role};

fn foundation(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = rt.block_on(Db::connect(&url, 4)).unwrap();
    let token = rt
        .block_on(users::add(&db, "bench", Role::Rep, "emea"))
        .unwrap()
        .token;
    c.bench_function("users/authenticate", |b| {
        b.iter(|| rt.block_on(users::authenticate(&db, &token)).unwrap())
    });

    let queue = JobQueue::new(db.clone(), &JobsConfig::default());
    let payload = serde_json::json!({"call_id": "0196f0c2-0000-7000-8000-000000000000"});
    c.bench_function("jobs/enqueue", |b| {
        b.iter(|| rt.block_on(queue.enqueue("bench", &payload, None)).unwrap())
    });

    let store = BlobStore::directory(dir.path().join("blobs"), db.clone());
    let mut group = c.benchmark_group("blobs");
    let size = 1024 * 1024;
    group.throughput(Throughput::Bytes(size as u64));
    let mut n = 0u64;
    group.bench_function("put_1MiB", |b| {
        b.iter(|| {
            // Distinct content each time so every put writes a new file.
            n += 1;
            let mut data = vec![0u8; size];
            data[..8].copy_from_slice(&n.to_le_bytes());
            rt.block_on(store.put(&data[..], "application/octet-stream", u64::MAX))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = foundation
}
criterion_main!(benches);
