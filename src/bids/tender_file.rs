//! A tender uploaded as a file, turned into plain text: `.txt` and `.md` (UTF-8 only), and
//! `.docx`, read with the `zip` crate and `quick-xml` on `word/document.xml` (a small,
//! maintained pair; the full `docx-rs` model is far more than reading text needs). One line
//! per paragraph, so each paragraph of the tender becomes one requirement. Size limits on the
//! file and on the unpacked document guard against zip bombs; a corrupt file is an
//! `InvalidInput` that says what to do, never a panic.

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::{Error, Result};

/// The largest tender file accepted.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
/// The largest unpacked `word/document.xml` read from a `.docx`.
const MAX_XML: u64 = 32 * 1024 * 1024;

/// The text of an uploaded tender file named `name`, one paragraph per line.
pub fn text(name: &str, bytes: &[u8]) -> Result<String> {
    if bytes.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{name:?} is empty; choose the tender file again or paste its text"
        )));
    }
    if bytes.len() > MAX_BYTES {
        return Err(Error::TooLarge(format!(
            "{name:?} is {} KiB; tender files may be at most {} KiB (paste the requirements \
             instead)",
            bytes.len() / 1024,
            MAX_BYTES / 1024
        )));
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let text = match ext.as_str() {
        "txt" | "md" | "markdown" => utf8_text(name, bytes)?,
        "docx" => docx_text(name, bytes)?,
        _ => {
            return Err(Error::InvalidInput(format!(
                "{name:?} is not a .txt, .md or .docx file; save the tender in one of those \
                 formats or paste its text"
            )));
        }
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{name:?} has no text; check the file or paste the tender's text"
        )));
    }
    Ok(text)
}

/// A tender's text as its title (its first line, when that is a Markdown heading) and the
/// rest without Markdown headings (section names, not requirements).
pub fn split_title(text: &str) -> (Option<String>, String) {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    let title = lines
        .next_if(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim().to_string());
    let rest: Vec<&str> = lines.filter(|l| !l.starts_with('#')).collect();
    (title, rest.join("\n"))
}

/// A UTF-8 text file (a byte-order mark is dropped, line ends normalized).
fn utf8_text(name: &str, bytes: &[u8]) -> Result<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.contains(&0) {
        return Err(Error::InvalidInput(format!(
            "{name:?} is a binary file, not text; upload a .txt or .md file saved as UTF-8"
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::InvalidInput(format!(
            "{name:?} is not UTF-8 text (invalid byte at position {}); save it as UTF-8 and \
             upload it again",
            e.valid_up_to()
        ))
    })?;
    Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
}

/// The paragraphs of a `.docx`: the text runs of each `<w:p>`, tabs and breaks kept,
/// numbered or bulleted paragraphs as `- ` items.
fn docx_text(name: &str, bytes: &[u8]) -> Result<String> {
    let corrupt = |what: String| {
        Error::InvalidInput(format!(
            "{name:?} is not a readable .docx ({what}); open it in your word processor, save it \
             again as .docx, or paste its text"
        ))
    };
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(format!("not a zip: {e}")))?;
    let mut file = archive
        .by_name("word/document.xml")
        .map_err(|e| corrupt(format!("no word/document.xml: {e}")))?;
    if file.size() > MAX_XML {
        return Err(Error::TooLarge(format!(
            "{name:?} unpacks to {} MiB of text; tender files may unpack to at most {} MiB",
            file.size() >> 20,
            MAX_XML >> 20
        )));
    }
    let mut xml = String::new();
    (&mut file)
        .take(MAX_XML)
        .read_to_string(&mut xml)
        .map_err(|e| corrupt(format!("its document cannot be unpacked as UTF-8: {e}")))?;
    paragraphs(&xml).map_err(corrupt)
}

/// The text of WordprocessingML, one line per paragraph.
fn paragraphs(xml: &str) -> std::result::Result<String, String> {
    let mut reader = Reader::from_str(xml);
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut listed = false;
    let mut in_text = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("bad XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            Event::End(e) if e.local_name().as_ref() == "t" => in_text = false,
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "tab" => current.push('\t'),
                "br" | "cr" => current.push(' '),
                "numPr" => listed = true,
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == "p" => {
                let line = current.trim();
                if !line.is_empty() {
                    out.push(if listed {
                        format!("- {line}")
                    } else {
                        line.to_string()
                    });
                }
                current.clear();
                listed = false;
            }
            Event::Text(t) if in_text => current.push_str(&t.xml10_content()),
            Event::CData(t) if in_text => current.push_str(&t),
            Event::GeneralRef(r) if in_text => {
                let c = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match &*r {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => {
                            return Err(format!("unknown entity &{other};"));
                        }
                    },
                };
                current.push(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A minimal .docx: the content types and a document with the given body XML.
    fn docx(body: &str) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("[Content_Types].xml", options).unwrap();
        w.write_all(br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#)
            .unwrap();
        w.start_file("word/document.xml", options).unwrap();
        write!(
            w,
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        )
        .unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn a_docx_gives_one_line_per_paragraph() {
        let bytes = docx(concat!(
            r#"<w:p><w:r><w:t>ICU monitoring </w:t></w:r><w:r><w:t xml:space="preserve">&amp; alarms</w:t></w:r></w:p>"#,
            r#"<w:p/>"#,
            r#"<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/></w:numPr></w:pPr><w:r><w:t>Bedside monitors</w:t><w:tab/><w:t>16 beds</w:t></w:r></w:p>"#,
            r#"<w:p><w:r><w:t>中央监护站 &#8211; 报警</w:t></w:r></w:p>"#
        ));
        assert_eq!(
            text("Tender.DOCX", &bytes).unwrap(),
            "ICU monitoring & alarms\n- Bedside monitors\t16 beds\n中央监护站 – 报警"
        );
    }

    #[test]
    fn a_corrupt_or_hollow_docx_is_refused_with_a_clear_message() {
        let truncated = &docx("<w:p><w:r><w:t>x</w:t></w:r></w:p>")[..40];
        let e = text("t.docx", truncated).unwrap_err().to_string();
        assert!(e.contains("not a readable .docx"), "{e}");
        let e = text("t.docx", b"PK\x03\x04 not really")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a readable .docx"), "{e}");
        let e = text("t.docx", &docx("<w:p><w:r><w:t>open")).unwrap_err();
        assert!(e.to_string().contains("bad XML"), "{e}");
        let e = text("t.docx", &docx("<w:p/>")).unwrap_err().to_string();
        assert!(e.contains("has no text"), "{e}");
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("other.xml", zip::write::SimpleFileOptions::default())
            .unwrap();
        let no_document = w.finish().unwrap().into_inner();
        let e = text("t.docx", &no_document).unwrap_err().to_string();
        assert!(e.contains("no word/document.xml"), "{e}");
    }

    #[test]
    fn a_leading_markdown_heading_is_the_title() {
        let (title, rest) = split_title("# ICU monitoring\n\n## Needs\n- Monitors\nTraining\n");
        assert_eq!(title.as_deref(), Some("ICU monitoring"));
        assert_eq!(rest, "- Monitors\nTraining");
        assert_eq!(split_title("Monitors\n# Later").0, None);
    }

    #[test]
    fn text_files_must_be_utf8_text() {
        assert_eq!(
            text("t.md", "\u{feff}# ICU\r\n\r\n- Monitors\r\n".as_bytes()).unwrap(),
            "# ICU\n\n- Monitors"
        );
        // "Überwachung" in Latin-1.
        let e = text("t.txt", b"\xdcberwachung").unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("position 0"), "{e}");
        let e = text("t.txt", b"ab\x00\x01cd").unwrap_err().to_string();
        assert!(e.contains("binary"), "{e}");
        let e = text("t.pdf", b"%PDF-1.7").unwrap_err().to_string();
        assert!(e.contains(".txt, .md or .docx"), "{e}");
        assert!(text("t.txt", b"").is_err());
        assert!(text("t.txt", b" \n ").is_err());
        let big = vec![b'a'; MAX_BYTES + 1];
        assert!(matches!(text("t.txt", &big), Err(Error::TooLarge(_))));
    }
}
