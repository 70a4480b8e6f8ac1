//! Suggested answers per objection category and language. Defaults are built in; a file
//! `<dir>/<language>/<category>.md` replaces one without recompiling and is read on every use.

use std::path::{Path, PathBuf};

use super::extract::Category;

/// The playbook: built-in answers, overridden by files in `dir`.
#[derive(Debug, Clone)]
pub struct Playbook {
    dir: Option<PathBuf>,
}

macro_rules! builtin {
    ($lang:literal) => {
        [
            include_str!(concat!("../../prompts/playbook/", $lang, "/price.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/budget.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/timing.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/competitor.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/authority.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/need.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/trust.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/product_fit.md")),
            include_str!(concat!("../../prompts/playbook/", $lang, "/contract.md")),
        ]
    };
}

const EN: [&str; 9] = builtin!("en");
const ZH: [&str; 9] = builtin!("zh");

impl Playbook {
    /// Answers from `dir` where present, built-in ones otherwise.
    pub fn new(dir: Option<&Path>) -> Playbook {
        Playbook {
            dir: dir.map(Path::to_path_buf),
        }
    }

    /// The suggested answer to an objection of `category` in `language` (`en` or `zh`; other
    /// languages get the English answer).
    pub fn answer(&self, category: Category, language: &str) -> String {
        let lang = if language == "zh" { "zh" } else { "en" };
        let edited = self.dir.as_ref().and_then(|dir| {
            std::fs::read_to_string(dir.join(lang).join(format!("{}.md", category.as_str()))).ok()
        });
        let builtin = if lang == "zh" { ZH } else { EN }[category as usize];
        edited
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| builtin.to_string())
            .trim()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_has_an_answer_in_both_languages() {
        let book = Playbook::new(None);
        for c in Category::ALL {
            assert!(book.answer(c, "en").len() > 40, "{c:?}");
            assert!(
                book.answer(c, "zh").chars().any(|ch| ch > '\u{4e00}'),
                "{c:?}"
            );
        }
        assert!(book.answer(Category::Price, "en").contains("value"));
        assert!(book.answer(Category::Price, "zh").contains("价值"));
    }

    #[test]
    fn an_edited_file_replaces_the_builtin_answer_without_recompiling() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        let book = Playbook::new(Some(dir.path()));
        let before = book.answer(Category::Budget, "en");
        std::fs::write(
            dir.path().join("en/budget.md"),
            "Offer a pilot paid from next year's budget.\n",
        )
        .unwrap();
        assert_eq!(
            book.answer(Category::Budget, "en"),
            "Offer a pilot paid from next year's budget."
        );
        assert_ne!(before, book.answer(Category::Budget, "en"));
        // Other categories and languages keep their built-in answers.
        assert_eq!(
            book.answer(Category::Price, "zh"),
            Playbook::new(None).answer(Category::Price, "zh")
        );
    }
}
