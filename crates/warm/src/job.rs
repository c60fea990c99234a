//! What a job is under each protocol: the request made of its bytes, and the bytes of its
//! answer.

use serde_json::Value;
use subprocess_pool::Protocol;
use subprocess_pool::protocol::{
    BazelJson, BazelProto, JsonRpc, LengthPrefixed, Lines, RpcMessage, WorkRequest, WorkResponse,
};

/// A protocol jobs can be sent with.
pub(crate) trait JobProtocol: Protocol {
    /// The request for a job; `Err` says why the job cannot be sent (it fails, the others
    /// go on).
    fn request(&self, job: &[u8], method: &str) -> Result<Self::Request, String>;

    /// What to write to stdout for a response; `Err` is the worker saying the job failed.
    fn answer(&self, response: Self::Response) -> Result<Vec<u8>, String>;
}

impl JobProtocol for Lines {
    fn request(&self, job: &[u8], _: &str) -> Result<String, String> {
        String::from_utf8(job.to_vec()).map_err(|error| {
            format!(
                "the job is not valid UTF-8 (at byte {}), which the lines protocol needs; \
                 use --protocol length-prefixed for bytes",
                error.utf8_error().valid_up_to() + 1
            )
        })
    }

    fn answer(&self, line: String) -> Result<Vec<u8>, String> {
        Ok(line.into_bytes())
    }
}

impl JobProtocol for LengthPrefixed {
    fn request(&self, job: &[u8], _: &str) -> Result<bytes::Bytes, String> {
        Ok(bytes::Bytes::copy_from_slice(job))
    }

    fn answer(&self, frame: bytes::Bytes) -> Result<Vec<u8>, String> {
        Ok(frame.to_vec())
    }
}

impl JobProtocol for JsonRpc {
    fn request(&self, job: &[u8], method: &str) -> Result<RpcMessage, String> {
        let params: Value = serde_json::from_slice(job).map_err(|error| {
            format!("the job is not JSON params for --method {method}: {error}")
        })?;
        Ok(RpcMessage::request(method, params))
    }

    fn answer(
        &self,
        response: Result<Value, subprocess_pool::protocol::RpcError>,
    ) -> Result<Vec<u8>, String> {
        match response {
            Ok(result) => serde_json::to_vec(&result).map_err(|error| error.to_string()),
            Err(error) => Err(format!(
                "the worker answered error {}: {}",
                error.code, error.message
            )),
        }
    }
}

/// A job's line as Bazel arguments; the output of a response that succeeded.
fn work_request(job: &[u8]) -> Result<WorkRequest, String> {
    let line = std::str::from_utf8(job).map_err(|_| "the job is not valid UTF-8".to_string())?;
    Ok(WorkRequest {
        arguments: line.split_whitespace().map(str::to_owned).collect(),
        ..WorkRequest::default()
    })
}

fn work_answer(response: WorkResponse) -> Result<Vec<u8>, String> {
    match response.exit_code {
        0 => Ok(response.output.into_bytes()),
        code => Err(format!(
            "the worker answered exit code {code}: {}",
            response.output.trim_end()
        )),
    }
}

impl JobProtocol for BazelJson {
    fn request(&self, job: &[u8], _: &str) -> Result<WorkRequest, String> {
        work_request(job)
    }

    fn answer(&self, response: WorkResponse) -> Result<Vec<u8>, String> {
        work_answer(response)
    }
}

impl JobProtocol for BazelProto {
    fn request(&self, job: &[u8], _: &str) -> Result<WorkRequest, String> {
        work_request(job)
    }

    fn answer(&self, response: WorkResponse) -> Result<Vec<u8>, String> {
        work_answer(response)
    }
}
