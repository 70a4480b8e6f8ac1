//! # dealdesk
//!
//! A self-hosted AI sales assistant that runs its models on the local CPU, so a company's
//! calls, bids and prices never leave its own machine.
//!
//! ## Design
//!
//! One crate, a module per capability over shared infrastructure:
//!
//! * infrastructure — [`config`] (file + `DEALDESK_*` environment), [`store`] (SQL database
//!   through sqlx, SQLite by default or PostgreSQL, plus a content-addressed blob store),
//!   [`jobs`] (a durable job queue with leases, worked by a bounded pool of blocking threads),
//!   [`users`] (roles, regions and hashed API tokens), [`engines`] (the Whisper and LLM
//!   models, each loaded once per process on first use and shared), [`models`] (the pinned model manifest:
//!   fetch from package registries, convert, verify), [`http`] (axum API) and [`web`] (the
//!   browser pages on the same router) — the only places that know about HTTP — and [`cli`].
//! * capabilities — added module by module (`asr`, `llm`, `calls`, `bids`, `quotes`,
//!   `review`); each depends on infrastructure, never on [`http`].
//!
//! Errors from every module are one type, [`Error`]; `http::error` maps it to status codes in
//! one place and the CLI prints its message, which says what to do next.
//!
//! See `ARCHITECTURE.md` for the module map and data flow.

pub mod app;
pub mod asr;
pub mod bids;
pub mod calls;
pub mod cli;
pub mod config;
pub mod demo;
pub mod diarize;
pub mod engines;
pub mod error;
pub mod http;
pub mod jobs;
pub mod llm;
pub mod models;
pub mod ops;
pub mod quotes;
pub mod review;
pub mod store;
pub mod users;
pub mod web;

pub use error::{Error, Result};
