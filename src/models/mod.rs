//! Placeholder until the models branch lands: the pinned model manifest and readiness.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::Config;

/// The pinned models.
#[derive(Debug, Default)]
pub struct Manifest {}

impl Manifest {
    pub fn load(_config: &Config) -> crate::Result<Manifest> {
        Ok(Manifest {})
    }
}

/// One model's state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    pub id: String,
    pub ok: bool,
    pub detail: String,
}

pub fn readiness(config: &Config, _manifest: &Manifest) -> Vec<ModelStatus> {
    let _: PathBuf = config.models.dir.clone();
    Vec::new()
}
