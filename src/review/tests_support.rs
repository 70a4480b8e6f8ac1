//! Fixtures shared by the review tests: a database with users in two regions.

use serde_json::json;

use super::{Kind, Proposal, Subject, propose};
use crate::store::Db;
use crate::users::{self, Role, User};

pub struct World {
    pub _dir: tempfile::TempDir,
    pub db: Db,
    pub rep: User,
    pub other_rep: User,
    pub manager: User,
    pub other_manager: User,
    pub admin: User,
}

impl World {
    pub async fn new() -> World {
        let (dir, db) = crate::store::temp_db().await;
        let add = |name: &'static str, role, region: &'static str| {
            let db = db.clone();
            async move { users::add(&db, name, role, region).await.unwrap().user }
        };
        World {
            rep: add("rep", Role::Rep, "emea").await,
            other_rep: add("other-rep", Role::Rep, "emea").await,
            manager: add("manager", Role::Manager, "emea").await,
            other_manager: add("apac-manager", Role::Manager, "apac").await,
            admin: add("admin", Role::Admin, "hq").await,
            db,
            _dir: dir,
        }
    }
}

pub fn proposal(kind: Kind, owner: &User) -> Proposal {
    Proposal {
        kind,
        subject: Subject::Deal,
        subject_id: "deal-1".into(),
        region: owner.region.clone(),
        owner_id: Some(owner.id.clone()),
        model_id: "quotes-logit".into(),
        model_version: "v1".into(),
        prompt_version: None,
        input: json!({"discount": 0.1}),
        output: json!({"discount": 0.12}),
        explanation: Some("segment and size".into()),
        confidence: Some(0.8),
        discount: None,
        deal_value: None,
    }
}

pub async fn propose_one(db: &Db, proposal: &Proposal) -> String {
    let mut tx = db.begin().await.unwrap();
    let id = propose(&mut tx, proposal).await.unwrap();
    tx.commit().await.unwrap();
    id
}
