//! Operations: `dealdesk backup` and `dealdesk restore` (a consistent online snapshot of the
//! database, the uploads and the configuration, verified by checksums) and `dealdesk doctor`
//! (checks the data after a crash or a disk problem and repairs what can be derived again).
//!
//! Both work through the same portable SQL as the rest of dealdesk, so they serve SQLite and
//! PostgreSQL alike: [`tables`] reads the schema from the database's catalog and moves rows
//! as typed values.

pub mod backup;
pub mod doctor;
pub mod tables;

/// Whether another handle (a running `dealdesk serve` or `worker`) holds the writer lock of
/// the derived index in `dir`: the sign that a process works on this data directory.
pub fn index_in_use(dir: &std::path::Path) -> bool {
    if !dir.join("meta.json").exists() {
        return false;
    }
    let Ok(directory) = tantivy::directory::MmapDirectory::open(dir) else {
        return false;
    };
    tantivy::Directory::acquire_lock(&directory, &tantivy::directory::INDEX_WRITER_LOCK).is_err()
}
