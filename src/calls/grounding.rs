//! Grounding: every item must quote the transcript. Quotes are compared after the evaluator's
//! normalization (Unicode NFKC, case-fold, whitespace, punctuation and symbols removed), and
//! two quotes overlap by their longest common substring.

use unicode_normalization::UnicodeNormalization;

/// NFKC, lower-cased, keeping only letters and digits (drops whitespace, punctuation and
/// symbols: Unicode categories Z*, P*, S*).
pub fn normalize(s: &str) -> Vec<char> {
    s.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Length of the longest common substring of two normalized strings.
pub fn longest_common_substring(a: &[char], b: &[char]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut best = 0;
    for x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            if x == y {
                cur[j + 1] = prev[j] + 1;
                best = best.max(cur[j + 1]);
            }
        }
        prev = cur;
    }
    best
}

/// Overlap of two quotes: common substring over the shorter normalized quote (0..=1).
pub fn overlap(a: &str, b: &str) -> f64 {
    let (a, b) = (normalize(a), normalize(b));
    let shorter = a.len().min(b.len());
    if shorter == 0 {
        return 0.0;
    }
    longest_common_substring(&a, &b) as f64 / shorter as f64
}

/// The evaluator's rule: quotes overlap when the common substring covers half the shorter.
pub fn quotes_overlap(a: &str, b: &str) -> bool {
    overlap(a, b) >= 0.5
}

/// Whether `quote` occurs in `text` after normalization (and is not empty).
pub fn is_grounded(quote: &str, text: &str) -> bool {
    let q = normalize(quote);
    if q.is_empty() {
        return false;
    }
    let t = normalize(text);
    t.windows(q.len()).any(|w| w == q.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_case_space_punctuation_and_width() {
        assert_eq!(
            normalize("I'll send it — by Friday!"),
            normalize("ill SEND it by friday")
        );
        assert_eq!(normalize("月底前，发给您。"), normalize("月底前发给您"));
        assert_eq!(normalize("ＡＢＣ１２"), normalize("abc12"));
    }

    #[test]
    fn grounded_quotes_must_occur_in_the_text() {
        let turn = "That's useful to know. I'll pull your seat usage report and share it with you tomorrow.";
        assert!(is_grounded("I'll pull your seat usage report", turn));
        assert!(is_grounded(
            "ill pull your SEAT usage report, and",
            "x ill pull your seat usage report and y"
        ));
        assert!(!is_grounded("I'll send you a fifty percent discount", turn));
        assert!(!is_grounded("...", turn), "an empty quote grounds nothing");
        assert!(is_grounded(
            "下周三我带技术人员去",
            "这个我们可以帮忙。下周三我带技术人员去你们场地。"
        ));
    }

    #[test]
    fn overlap_follows_the_evaluator_rule() {
        let gold = "I'll send the revised proposal by Friday instead";
        let whole = "Our finance team has to approve any one year option, so I'll send the revised proposal by Friday instead.";
        assert!(
            quotes_overlap(gold, whole),
            "a sentence containing the gold span overlaps it"
        );
        assert!(!quotes_overlap(
            gold,
            "I'll prepare a short summary for that meeting"
        ));
        assert_eq!(overlap("abc", ""), 0.0);
        assert_eq!(
            longest_common_substring(&normalize("xabcy"), &normalize("zabcw")),
            3
        );
    }
}
