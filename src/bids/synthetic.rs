//! Synthetic bid libraries of any size for benchmarks and crash tests: deterministic for a
//! seed, both languages, every sector and outcome, realistic text length (about 2 KB a bid).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::record::{Bid, Lang, Outcome, Sections};

const SECTORS: [&str; 8] = [
    "healthcare",
    "manufacturing",
    "education",
    "energy",
    "transport",
    "retail",
    "public_sector",
    "it_services",
];

const EN_WORDS: &[&str] = &[
    "monitoring",
    "platform",
    "integration",
    "hospital",
    "campus",
    "network",
    "charging",
    "depot",
    "migration",
    "cloud",
    "security",
    "sensors",
    "maintenance",
    "training",
    "support",
    "availability",
    "interface",
    "records",
    "alarms",
    "stores",
    "loyalty",
    "payments",
    "portal",
    "citizens",
    "forms",
    "workflow",
    "analytics",
    "dashboard",
    "meters",
    "grid",
    "solar",
    "battery",
    "fleet",
    "ticketing",
    "warehouse",
    "inventory",
    "robots",
    "inspection",
    "vision",
    "quality",
    "backup",
    "recovery",
    "wireless",
    "access",
    "identity",
    "compliance",
    "schedule",
    "rollout",
    "pilot",
    "phases",
    "engineers",
    "response",
    "warranty",
    "licences",
    "devices",
];

const ZH_WORDS: &[&str] = &[
    "监控",
    "平台",
    "对接",
    "医院",
    "校园",
    "网络",
    "充电",
    "场站",
    "迁移",
    "云平台",
    "安全",
    "传感器",
    "维护",
    "培训",
    "支持",
    "可用率",
    "接口",
    "病历",
    "报警",
    "门店",
    "会员",
    "支付",
    "门户",
    "群众",
    "表单",
    "流程",
    "分析",
    "看板",
    "电表",
    "电网",
    "光伏",
    "储能",
    "车队",
    "票务",
    "仓库",
    "库存",
    "机器人",
    "检测",
    "视觉",
    "质量",
    "备份",
    "灾备",
    "无线",
    "准入",
    "身份",
    "合规",
    "工期",
    "推广",
    "试点",
    "分期",
    "工程师",
    "响应",
    "质保",
    "许可",
    "设备",
];

fn sentence(rng: &mut StdRng, lang: Lang, words: usize) -> String {
    let pool = match lang {
        Lang::En => EN_WORDS,
        Lang::Zh => ZH_WORDS,
    };
    let picked: Vec<&str> = (0..words)
        .map(|_| *pool.choose(rng).expect("pool"))
        .collect();
    match lang {
        Lang::En => format!("We deliver {} for the buyer.", picked.join(" ")),
        Lang::Zh => format!("我司为采购人提供{}。", picked.join("")),
    }
}

fn paragraph(rng: &mut StdRng, lang: Lang) -> String {
    (0..3)
        .map(|_| sentence(rng, lang, 10))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bid number `n` of the synthetic library for `seed`.
pub fn bid(seed: u64, n: usize) -> Bid {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(n as u64));
    let lang = if rng.random_bool(0.45) {
        Lang::Zh
    } else {
        Lang::En
    };
    let outcome = *[
        Outcome::Won,
        Outcome::Won,
        Outcome::Lost,
        Outcome::Lost,
        Outcome::Withdrawn,
        Outcome::Pending,
    ]
    .choose(&mut rng)
    .expect("outcomes");
    Bid {
        id: format!("SYN-{n:07}"),
        title: sentence(&mut rng, lang, 5),
        buyer: format!("Buyer {}", rng.random_range(0..5000)),
        buyer_type: "enterprise".into(),
        sector: SECTORS.choose(&mut rng).expect("sectors").to_string(),
        region: format!("region-{}", rng.random_range(0..40)),
        country: "US".into(),
        language: lang,
        submitted_date: Some(format!(
            "{}-{:02}-{:02}",
            rng.random_range(2015..2026),
            rng.random_range(1..13),
            rng.random_range(1..29)
        )),
        value: Some(rng.random_range(50_000.0..20_000_000.0f64).round()),
        currency: Some("USD".into()),
        outcome,
        requirements: (0..5).map(|_| sentence(&mut rng, lang, 6)).collect(),
        sections: Sections {
            executive_summary: paragraph(&mut rng, lang),
            technical_approach: paragraph(&mut rng, lang),
            implementation_plan: paragraph(&mut rng, lang),
            service_and_support: paragraph(&mut rng, lang),
            pricing_summary: paragraph(&mut rng, lang),
            compliance: paragraph(&mut rng, lang),
            differentiators: paragraph(&mut rng, lang),
        },
        feedback: sentence(&mut rng, lang, 8),
        tags: vec![SECTORS.choose(&mut rng).expect("sectors").to_string()],
    }
}

/// Bids `0..count` of the synthetic library for `seed`.
pub fn library(seed: u64, count: usize) -> Vec<Bid> {
    (0..count).map(|n| bid(seed, n)).collect()
}

/// A synthetic tender text in `lang` (for latency measurements).
pub fn tender_text(seed: u64, lang: Lang) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..6)
        .map(|_| sentence(&mut rng, lang, 8))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_bids_are_valid_and_deterministic() {
        let a = library(7, 50);
        assert_eq!(a, library(7, 50));
        for bid in &a {
            bid.validate().unwrap();
        }
        assert!(a.iter().any(|b| b.language == Lang::Zh));
    }
}
