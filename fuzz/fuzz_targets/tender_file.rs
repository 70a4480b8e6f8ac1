//! Tender files (`POST /bids/tender-file`, the new-tender form): .txt/.md as UTF-8 text and
//! .docx unzipped and read as WordprocessingML. Input: one selector byte (the file name's
//! extension), then the file.
#![no_main]
use dealdesk::bids::tender_file::{split_title, text};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["t.docx", "t.txt", "t.md", "T.DOCX", "tender"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    if let Ok(t) = text(name, file) {
        assert!(!t.trim().is_empty());
        let _ = split_title(&t);
    }
});
