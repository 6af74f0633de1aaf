//! The Slurm client against the test bed's real slurmrestd.
//!
//! Run with the test bed up: `source tests/testbed/run/env && cargo test -p computenet-members
//! --test slurmrestd -- --ignored` (tests/run.sh does this).

use computenet_members::slurm::convert::{self, BatchJob, RemotePhase};
use computenet_members::slurm::{Credentials, SlurmClient};
use computenet_members::Error;
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: bring the test bed up (tests/testbed/up.sh) and `source tests/testbed/run/env`")
    })
}

fn client(credentials: Credentials) -> SlurmClient {
    SlurmClient::new(&env("SLURMRESTD_URL"), &env("SLURM_API_VERSION"), &env("SLURM_USER_NAME"), credentials)
        .expect("client")
}

fn key_client() -> SlurmClient {
    let key = std::fs::read(env("SLURM_JWT_KEY_FILE")).expect("the test bed's JWT key");
    client(Credentials::JwtKey(key))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
#[ignore = "needs the test bed's slurmrestd"]
fn nodes_read_with_a_static_token_and_with_a_signed_one() {
    runtime().block_on(async {
        let by_token = client(Credentials::Token(env("SLURM_USER_TOKEN"))).nodes().await.expect("nodes");
        let by_key = key_client().nodes().await.expect("nodes with a self-signed token");
        assert!(!by_token.is_empty());
        assert_eq!(by_token.len(), by_key.len());
        let catalogue = computenet_core::Catalogue::built_in();
        for n in &by_key {
            let (node, raw) = convert::core_node(n, &catalogue);
            assert!(node.allocatable.cpu_millis > 0 && node.allocatable.memory_bytes > 0, "{n:?}");
            if node.allocatable.accelerators > 0 {
                assert!(raw.is_some() && node.accelerator.is_some(), "typed gres expected: {n:?}");
            }
        }
    });
}

#[test]
#[ignore = "needs the test bed's slurmrestd"]
fn a_bad_token_is_an_auth_error_and_a_dead_endpoint_a_transport_error() {
    runtime().block_on(async {
        let bad = client(Credentials::JwtKey(b"not the cluster's key".to_vec()));
        match bad.nodes().await {
            Err(Error::Auth { .. }) | Err(Error::Server { .. }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        let dead = SlurmClient::new("http://127.0.0.1:1", "v0.0.38", "nobody", Credentials::Token("t".into()))
            .expect("client");
        let e = dead.nodes().await.expect_err("nothing listens on port 1");
        assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    });
}

#[test]
#[ignore = "needs the test bed's slurmrestd"]
fn a_batch_job_runs_fails_with_its_exit_code_and_cancels() {
    runtime().block_on(async {
        let c = key_client();
        let dir = env("SLURM_JOB_DIR");
        let batch = |name: &str, command: &str, replicas: u32| BatchJob {
            name: name.into(),
            comment: convert::Tag {
                hub: "members-test".into(),
                uid: format!("members-test-{name}"),
                attempt: 1,
                training_job: format!("test/{name}"),
            }
            .comment(),
            training_job: format!("test/{name}"),
            replicas,
            gpus_per_replica: 1,
            gpu_type: None,
            cpus_per_replica: 1,
            memory_mib_per_replica: 256,
            time_limit_minutes: Some(2),
            partition: None,
            account: None,
            working_directory: dir.clone(),
            standard_output: format!("{dir}/%x-%j.out"),
            command: vec!["bash".into(), "-c".into(), command.into()],
            env: vec![("GREETING".into(), "hello world".into())],
        };
        let ok = c
            .submit(&batch("cn-members-ok", "echo \"$GREETING rank $RANK of $WORLD_SIZE\"", 2).submit_request())
            .await
            .expect("submit");
        let fail = c.submit(&batch("cn-members-fail", "exit 3", 1).submit_request()).await.expect("submit");
        let long = c.submit(&batch("cn-members-long", "sleep 120", 1).submit_request()).await.expect("submit");
        let state_of = |id: u64| {
            let c = &c;
            async move {
                let jobs = c.jobs().await.expect("jobs");
                let job = jobs.into_iter().find(|j| j.job_id == id).expect("listed");
                // The comment comes back as written, and the owner is named.
                let tag = convert::Tag::parse(&job.comment).expect("the comment reads back");
                assert_eq!(tag.hub, "members-test");
                assert!(!job.user_name.is_empty(), "slurmrestd names the job's user");
                convert::remote_state(&job)
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (a, b, l) = (state_of(ok).await, state_of(fail).await, state_of(long).await);
            if a.phase == RemotePhase::Succeeded && b.phase == RemotePhase::Failed && l.phase == RemotePhase::Running {
                assert_eq!(b.exit_code, Some(3), "{b:?}");
                assert_eq!(b.reason, "NonZeroExitCode");
                break;
            }
            assert!(Instant::now() < deadline, "jobs did not finish: {a:?} {b:?} {l:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let out = std::fs::read_to_string(format!("{dir}/cn-members-ok-{ok}.out")).expect("output file");
        assert!(out.contains("hello world rank 0 of 2") && out.contains("hello world rank 1 of 2"), "{out}");
        c.cancel(long).await.expect("cancel");
        c.cancel(long).await.expect("cancelling twice is fine");
        c.cancel(999_999_999).await.expect("cancelling an unknown job is fine");
        let deadline = Instant::now() + Duration::from_secs(30);
        while state_of(long).await.reason != "Cancelled" {
            assert!(Instant::now() < deadline, "not cancelled");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // A job that can never fit is refused with Slurm's error.
        let huge = BatchJob { gpus_per_replica: 64, ..batch("cn-members-huge", "true", 1) };
        let e = c.submit(&huge.submit_request()).await.expect_err("cannot fit");
        assert!(matches!(e, Error::Server { .. }), "{e:?}");
        assert!(e.to_string().contains("submitting a job"), "{e}");
    });
}

#[test]
#[ignore = "needs the test bed's slurmrestd and its tenant users"]
fn a_job_submitted_as_a_tenant_is_that_users_and_only_it_cancels_it() {
    runtime().block_on(async {
        let c = key_client();
        let users = std::env::var("SLURM_TENANT_USERS").unwrap_or_else(|_| "cn-tenant-a cn-tenant-b".into());
        let mut users = users.split_whitespace();
        let (user, other) = (users.next().expect("a tenant user"), users.next().expect("a second tenant user"));
        let dir = format!("{}/{user}", env("SLURM_JOB_DIR"));
        let job = BatchJob {
            name: "cn-members-tenant".into(),
            comment: "members-test tenant".into(),
            training_job: "test/tenant".into(),
            replicas: 1,
            gpus_per_replica: 0,
            gpu_type: None,
            cpus_per_replica: 1,
            memory_mib_per_replica: 128,
            time_limit_minutes: Some(2),
            partition: None,
            account: None,
            working_directory: dir.clone(),
            standard_output: "%x-%j.out".into(),
            command: vec!["sleep".into(), "60".into()],
            env: vec![],
        };
        let id = c.submit_as(user, &job.submit_request()).await.expect("submit as the tenant");
        let listed = c.jobs().await.expect("jobs").into_iter().find(|j| j.job_id == id).expect("listed");
        assert_eq!(listed.user_name, user, "owned by the tenant's user, not the service's");
        let e = c.cancel_as(other, id).await.expect_err("another tenant cannot cancel it");
        assert!(matches!(e, Error::Server { .. } | Error::Auth { .. }), "{e:?}");
        c.cancel_as(user, id).await.expect("its owner cancels it");
    });
}
