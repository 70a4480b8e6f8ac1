//! Measures prefill and decode speed of a GGUF model on this CPU.
//!
//! `cargo run --release --example llm_bench -- MODEL.gguf [--tokenizer tokenizer.json]
//!  [--prefill 512,4096] [--decode 128] [--weights quantized|on-the-fly|cached]`

use std::time::Instant;

use dealdesk::llm::{GenerateParams, Llm, LoadOptions, PrefillWeights, cpu_features};

fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds this process has used (user + system), from /proc (Linux).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}

fn main() -> dealdesk::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let mut opts = LoadOptions::new(args.first().expect("usage: llm_bench MODEL.gguf"));
    opts.tokenizer_json = arg("--tokenizer").map(Into::into);
    opts.prefill_weights = match arg("--weights").as_deref() {
        Some("quantized") => PrefillWeights::Quantized,
        Some("cached") => PrefillWeights::Cached,
        _ => PrefillWeights::DequantizeOnTheFly,
    };
    let prefills: Vec<usize> = arg("--prefill")
        .unwrap_or_else(|| "512,4096".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let decode: usize = arg("--decode").and_then(|s| s.parse().ok()).unwrap_or(128);
    println!("cpu: {}", cpu_features());
    let t = Instant::now();
    let mut llm = Llm::load(&opts)?;
    println!(
        "loaded {} in {:.2}s, rss {:.0} MB",
        llm.architecture(),
        t.elapsed().as_secs_f64(),
        rss_mb().0
    );
    let text = "The customer asked for a quote on 250 industrial sensors, delivery to Shenzhen \
                within six weeks, with a two-year warranty and on-site installation. 客户还要求提供培训。 ";
    let unit = llm.tokenizer().encode(text)?;
    for &n in &prefills {
        let prompt: Vec<u32> = unit.iter().cycle().take(n).copied().collect();
        // A fresh cache each time: change the first token so no prefix is reused.
        let mut p = prompt.clone();
        p[0] = unit[(n / 7) % unit.len()];
        let params = GenerateParams {
            max_tokens: 1,
            ..Default::default()
        };
        let _ = llm.generate_raw(&[unit[1], unit[2]], &params, &mut |_| {})?;
        let c0 = cpu_secs();
        let g = llm.generate_raw(&p, &params, &mut |_| {})?;
        let cpu = cpu_secs() - c0;
        println!(
            "prefill {n:>5} tokens: {:>7.1} tok/s ({:.2}s wall, {:.2}s cpu = {:.1} tok/cpu-s), rss {:.0} MB, peak {:.0} MB",
            g.stats.prefill_tok_per_s,
            g.stats.prefill_secs,
            cpu,
            n as f64 / cpu.max(1e-9),
            rss_mb().0,
            rss_mb().1
        );
    }
    let prompt = llm.render(&[dealdesk::llm::ChatMessage::user(
        "Count from 1 to 500, separated by commas.",
    )])?;
    let params = GenerateParams {
        max_tokens: decode,
        ..Default::default()
    };
    let c0 = cpu_secs();
    let g = llm.generate_raw(&prompt, &params, &mut |_| {})?;
    let cpu = cpu_secs() - c0 - g.stats.prefill_secs.min(0.0);
    println!(
        "decode {} tokens: {:.1} tok/s ({:.2}s cpu incl. a {}-token prefill = {:.1} tok/cpu-s), rss {:.0} MB, peak {:.0} MB",
        g.stats.generated_tokens,
        g.stats.decode_tok_per_s,
        cpu,
        g.stats.prompt_tokens,
        g.stats.generated_tokens as f64 / cpu.max(1e-9),
        rss_mb().0,
        rss_mb().1
    );
    // Schema-constrained generation: speed against free decoding above.
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "customer": {"type": "string", "maxLength": 40},
            "stage": {"type": "string", "enum": ["lead", "qualified", "proposal", "won", "lost"]},
            "probability": {"type": "integer", "minimum": 0, "maximum": 100},
            "summary": {"type": "string", "maxLength": 300},
            "items": {"type": "array", "maxItems": 5, "items": {
                "type": "object",
                "properties": {"product": {"type": "string"}, "quantity": {"type": "integer"}},
                "required": ["product", "quantity"], "additionalProperties": false}}
        },
        "required": ["customer", "stage", "probability", "summary", "items"],
        "additionalProperties": false
    });
    let msgs = [
        dealdesk::llm::ChatMessage::system("Extract the deal from the call notes as JSON."),
        dealdesk::llm::ChatMessage::user(
            "Call notes: Acme Corp wants 20 laptops and 5 docking stations for their new \
             Shenzhen office; they are comparing us with two vendors, budget approved, decision \
             next week. Summarize in detail.",
        ),
    ];
    let params = GenerateParams {
        max_tokens: 300,
        ..Default::default()
    };
    let t = Instant::now();
    let j = llm.generate_json(&msgs, &schema, &params)?;
    println!(
        "json: {} tokens in {:.2}s: {:.1} tok/s decode (prefill {:.1} tok/s): {}",
        j.stats.generated_tokens,
        t.elapsed().as_secs_f64(),
        j.stats.decode_tok_per_s,
        j.stats.prefill_tok_per_s,
        j.value
    );
    Ok(())
}
