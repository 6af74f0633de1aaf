//! Supercomputing members: Slurm clusters reached through slurmrestd.
//!
//! - [`api`]: what slurmrestd returns (v0.0.38 and later shapes), and its `errors` array.
//! - [`convert`]: pure translations: gres, node states, host lists, job states, batch jobs.
//! - [`client`]: the HTTP client, with static or self-signed HS256 tokens.
//! - [`member`]: a connected member: background poller, dispatch, cancel.
//! - [`batch`]: what a TrainingJob becomes there (a batch job with one task per replica).
//! - [`tenancy`]: which Slurm user, account and directory each hub namespace's jobs use,
//!   and which batch job is a TrainingJob's (recorded id and user, not the comment).

pub mod api;
pub mod batch;
pub mod client;
pub mod convert;
pub mod member;
pub mod tenancy;

pub use api::{SlurmJob, SlurmNode};
pub use client::{Credentials, SlurmClient};
pub use convert::{BatchJob, RemotePhase, RemoteState};
pub use member::{SlurmMember, SlurmPlacement};
