//! Workers written for Bazel's persistent-worker protocols, started with
//! `--persistent_worker`, serve a `SubprocessPool` unchanged.

use subprocess_pool::protocol::{BazelJson, BazelProto, WorkRequest};
use subprocess_pool::{Protocol, SubprocessPool, WorkerSpec};

fn worker(script: &str) -> WorkerSpec {
    let path = format!("{}/tests/workers/{script}", env!("CARGO_MANIFEST_DIR"));
    WorkerSpec::new("python3").args(["-u", &path, "--persistent_worker"])
}

fn request(arguments: &[&str], request_id: i32) -> WorkRequest {
    WorkRequest {
        arguments: arguments.iter().map(|&argument| argument.into()).collect(),
        request_id,
        ..Default::default()
    }
}

async fn serves_requests<P>(protocol: P, script: &str)
where
    P: Protocol<Request = WorkRequest, Response = subprocess_pool::protocol::WorkResponse>,
{
    let pool = SubprocessPool::builder(worker(script), protocol)
        .max_size(1)
        .build()
        .unwrap();
    let response = pool.call(request(&["compile", "a.ts"], 0)).await.unwrap();
    assert_eq!(
        (response.exit_code, response.output.as_str()),
        (0, "compile a.ts")
    );
    let response = pool.call(request(&["fail"], 0)).await.unwrap();
    assert_eq!(
        response.exit_code, 1,
        "a failed request is a normal response"
    );
    assert_eq!(response.output, "failed on purpose");
    let response = pool.call(request(&["with", "id"], 42)).await.unwrap();
    assert_eq!(
        (response.request_id, response.output.as_str()),
        (42, "with id")
    );
    assert_eq!(pool.metrics().created, 1, "one worker served every request");
    pool.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_bazel_json_worker_serves_requests_unchanged() {
    serves_requests(BazelJson::default(), "bazel_json_worker.py").await;
}

#[tokio::test]
async fn a_bazel_proto_worker_serves_requests_unchanged() {
    serves_requests(BazelProto::default(), "bazel_proto_worker.py").await;
}
