//! Quote recommender hot paths on a simulated market: one recommendation (curve, guardrails,
//! interval, explanation, 5 nearest of 10,000 past deals) and the refit on 100,000 outcomes,
//! warm-started (as outcomes arrive) and from zero coefficients. Also prints the
//! recommendation latency p50/p99 over 10,000 single calls and the time of one full fit
//! (penalty and calibration selection) on 100,000 outcomes.
//!
//! `cargo bench --bench quotes`; results are recorded in `eval/reports/quotes.md`.

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use dealdesk::quotes::model::{QuoteModel, TrainOptions};
use dealdesk::quotes::recommend::Recommender;
use dealdesk::quotes::rules::Rules;
use dealdesk::quotes::simulate::{Market, Rng, examples};

fn quotes(c: &mut Criterion) {
    let market = Market::regional();
    let mut rng = Rng::new(42);
    let policy = |_: &_, rng: &mut Rng| 0.3 * rng.uniform();
    let past = market.history(10_000, &mut rng, policy);
    let rules = Rules::load(std::path::Path::new("")).unwrap();
    let model = QuoteModel::train(&examples(&past), &TrainOptions::default()).unwrap();
    let recommender = Recommender::new(model.clone(), "bench".into(), 1, rules, &past);
    let deals: Vec<_> = (0..1000).map(|_| market.draw(&mut rng)).collect();

    let mut times: Vec<f64> = (0..10_000)
        .map(|i| {
            let start = Instant::now();
            std::hint::black_box(recommender.recommend(&deals[i % deals.len()]).unwrap());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "quotes/recommend latency over 10000 calls: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        times[5_000], times[9_900], times[9_999]
    );
    let mut i = 0;
    c.bench_function("quotes/recommend", |b| {
        b.iter(|| {
            i += 1;
            recommender.recommend(&deals[i % deals.len()]).unwrap()
        })
    });

    let big = examples(&market.history(100_000, &mut rng, policy));
    let start = Instant::now();
    let full = QuoteModel::train(&big, &TrainOptions::default()).unwrap();
    println!(
        "quotes/train_100k (7 penalties x 5 folds + calibration + final fit): {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let mut cold = full.clone();
    cold.beta.fill(0.0);
    let mut group = c.benchmark_group("quotes");
    group.sample_size(10);
    // As outcomes arrive: warm-started from the current model.
    group.bench_function("refit_100k_warm", |b| b.iter(|| model.refit(&big).unwrap()));
    // From zero coefficients with the selected penalty: a refit from scratch.
    group.bench_function("refit_100k_cold", |b| b.iter(|| cold.refit(&big).unwrap()));
    group.finish();
}

criterion_group!(benches, quotes);
criterion_main!(benches);
