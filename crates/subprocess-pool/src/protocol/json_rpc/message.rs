//! JSON-RPC 2.0 messages, and how they read from and write to JSON.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::quote;
use crate::protocol::ProtocolError;

/// The id of a JSON-RPC request, echoed by its response: a number, a string or `null`.
///
/// Serializes untagged, as the bare JSON number, string or `null`. The pool only sends
/// non-negative numbers; strings and `null` appear in requests from the worker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RpcId {
    /// A numeric id. Ids that are not integers in the range of `i64` are refused.
    Number(i64),
    /// A string id.
    String(String),
    /// `null`: the id of an error response to a request whose id could not be read.
    Null,
}

/// Any JSON-RPC 2.0 message: what the host sends, and what the worker's codec decodes.
///
/// `params: None` is sent with no `"params"` member; `Some(value)` is sent as is (the
/// JSON-RPC specification asks for an array or an object, which is not checked).
#[derive(Debug, Clone, PartialEq)]
pub enum RpcMessage {
    /// A call that expects a response with the same id.
    Request {
        /// The id the response must echo. The pool overwrites it on requests the host
        /// sends (see [`Protocol::prepare`](crate::Protocol::prepare)).
        id: RpcId,
        /// The method to call.
        method: String,
        /// The arguments, if any.
        params: Option<Value>,
    },
    /// A call that expects no response.
    Notification {
        /// The method to call.
        method: String,
        /// The arguments, if any.
        params: Option<Value>,
    },
    /// The answer to a request: its result, or the error it failed with.
    Response {
        /// The id of the request it answers.
        id: RpcId,
        /// `"result"` (`Ok`) or `"error"` (`Err`) on the wire. A `"result": null` is
        /// `Ok(Value::Null)`.
        result: Result<Value, RpcError>,
    },
}

impl RpcMessage {
    /// A request to call `method` with `params` (`Value::Null` for no `"params"` member).
    ///
    /// Its id is a placeholder, `RpcId::Number(0)`: the pool gives every request the
    /// worker's next sequence number when it is sent.
    pub fn request(method: impl Into<String>, params: Value) -> Self {
        Self::Request {
            id: RpcId::Number(0),
            method: method.into(),
            params: params_member(params),
        }
    }

    /// A notification of `method` with `params` (`Value::Null` for no `"params"` member).
    pub fn notification(method: impl Into<String>, params: Value) -> Self {
        Self::Notification {
            method: method.into(),
            params: params_member(params),
        }
    }

    /// The response to the request with id `id`, typically one the worker sent to the
    /// host.
    pub fn reply(id: RpcId, result: Result<Value, RpcError>) -> Self {
        Self::Response { id, result }
    }

    /// The method of a request or notification; `None` for a response.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request { method, .. } | Self::Notification { method, .. } => Some(method),
            Self::Response { .. } => None,
        }
    }
}

/// `null` params mean none: JSON-RPC allows params to be omitted but not to be `null`, and
/// a constructor taking a `Value` needs some way to say "no params".
fn params_member(params: Value) -> Option<Value> {
    match params {
        Value::Null => None,
        params => Some(params),
    }
}

/// The error object of an error response: `{"code": …, "message": …, "data": …}`.
///
/// Displays as `JSON-RPC error {code}: {message}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    /// What kind of error: one of the constants on this type, or a code of the
    /// application's (the specification reserves -32768 to -32000).
    pub code: i64,
    /// A short description of the error.
    pub message: String,
    /// Anything more about the error (omitted on the wire when `None`; a `"data": null`
    /// is read as `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// The message was not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON was not a valid request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method, or it is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params do not suit the method.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The method failed inside.
    pub const INTERNAL_ERROR: i64 = -32603;

    /// An error with `code` and `message`, and no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// The wire form of an outgoing message, borrowing from it.
#[derive(Serialize)]
pub(super) struct Outgoing<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RpcId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}

impl<'a> From<&'a RpcMessage> for Outgoing<'a> {
    fn from(message: &'a RpcMessage) -> Self {
        let mut outgoing = Outgoing {
            jsonrpc: "2.0",
            id: None,
            method: None,
            params: None,
            result: None,
            error: None,
        };
        match message {
            RpcMessage::Request { id, method, params } => {
                outgoing.id = Some(id);
                outgoing.method = Some(method);
                outgoing.params = params.as_ref();
            }
            RpcMessage::Notification { method, params } => {
                outgoing.method = Some(method);
                outgoing.params = params.as_ref();
            }
            RpcMessage::Response { id, result } => {
                outgoing.id = Some(id);
                match result {
                    Ok(value) => outgoing.result = Some(value),
                    Err(error) => outgoing.error = Some(error),
                }
            }
        }
        outgoing
    }
}

/// Reads a message body: a JSON object that is a request, a notification or a response.
/// Members other than those of JSON-RPC are ignored.
pub(super) fn parse(body: &[u8]) -> Result<RpcMessage, ProtocolError> {
    let bad = |what: String| ProtocolError::Malformed(format!("{what}: {}", quote(body)));
    let value: Value =
        serde_json::from_slice(body).map_err(|error| bad(format!("body is not JSON ({error})")))?;
    let mut object: Map<String, Value> = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Err(ProtocolError::Malformed("batches are not supported".into()));
        }
        _ => return Err(bad("a JSON-RPC message must be an object".into())),
    };
    match object.remove("jsonrpc") {
        // Lenient: a missing version changes nothing about how the message reads.
        None => {}
        Some(Value::String(version)) if version == "2.0" => {}
        Some(version) => return Err(bad(format!("not JSON-RPC 2.0 (\"jsonrpc\": {version})"))),
    }
    let id = object.remove("id").map(id_from).transpose().map_err(bad)?;
    let method = match object.remove("method") {
        None => None,
        Some(Value::String(method)) => Some(method),
        Some(_) => return Err(bad("\"method\" is not a string".into())),
    };
    let params = object.remove("params");
    let result = object.remove("result");
    let error = object.remove("error");
    match (method, id, result, error) {
        (Some(method), Some(id), None, None) => Ok(RpcMessage::Request { id, method, params }),
        (Some(method), None, None, None) => Ok(RpcMessage::Notification { method, params }),
        (Some(_), ..) => Err(bad("both a \"method\" and a \"result\" or \"error\"".into())),
        (None, Some(id), Some(result), None) => Ok(RpcMessage::Response {
            id,
            result: Ok(result),
        }),
        (None, Some(id), None, Some(error)) => {
            let error = serde_json::from_value(error).map_err(|error| {
                bad(format!(
                    "\"error\" is not {{code, message, data}} ({error})"
                ))
            })?;
            Ok(RpcMessage::Response {
                id,
                result: Err(error),
            })
        }
        (None, Some(_), Some(_), Some(_)) => Err(bad("both a \"result\" and an \"error\"".into())),
        (None, Some(_), None, None) => {
            Err(bad("a response without \"result\" or \"error\"".into()))
        }
        (None, None, ..) => Err(bad("neither a \"method\" nor an \"id\"".into())),
    }
}

/// An id as read from the wire, with a message saying why when it is not one.
fn id_from(value: Value) -> Result<RpcId, String> {
    match value {
        Value::Null => Ok(RpcId::Null),
        Value::String(id) => Ok(RpcId::String(id)),
        Value::Number(number) => number
            .as_i64()
            .map(RpcId::Number)
            .ok_or_else(|| format!("id {number} is not an integer that fits an i64")),
        other => Err(format!("id {other} is not a number, a string or null")),
    }
}

/// An id as JSON text, for error messages: `7`, `"abc"` or `null`.
pub(super) fn id_text(id: &RpcId) -> String {
    match id {
        RpcId::Number(number) => number.to_string(),
        RpcId::String(id) => quote(id.as_bytes()),
        RpcId::Null => "null".into(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use serde_json::json;
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;
    use crate::protocol::json_rpc::framing::tests::{
        codec, decode_one, encoded, framed, malformed,
    };

    #[test]
    fn every_kind_of_message_round_trips() {
        let messages = [
            RpcMessage::Request {
                id: RpcId::Number(3),
                method: "add".into(),
                params: Some(json!({"a": 1, "b": [true, null]})),
            },
            RpcMessage::Request {
                id: RpcId::String("abc".into()),
                method: "shutdown".into(),
                params: None,
            },
            RpcMessage::Request {
                id: RpcId::Null,
                method: "odd".into(),
                params: Some(json!([])),
            },
            RpcMessage::notification("log", json!({"text": "line\nbreak é"})),
            RpcMessage::notification("exit", Value::Null),
            RpcMessage::reply(RpcId::Number(7), Ok(json!({"sum": 3}))),
            RpcMessage::reply(RpcId::Number(8), Ok(Value::Null)),
            RpcMessage::reply(
                RpcId::String("x".into()),
                Err(RpcError {
                    code: -32000,
                    message: "boom".into(),
                    data: Some(json!({"why": "because"})),
                }),
            ),
            RpcMessage::reply(RpcId::Null, Err(RpcError::new(RpcError::PARSE_ERROR, "?"))),
        ];
        let mut sender = codec(1024);
        let mut wire = BytesMut::new();
        for message in &messages {
            sender.encode(message.clone(), &mut wire).unwrap();
        }
        let mut receiver = codec(1024);
        for message in messages {
            assert_eq!(receiver.decode(&mut wire).unwrap(), Some(message));
        }
        assert_eq!(receiver.decode(&mut wire).unwrap(), None);
        assert!(wire.is_empty());
    }

    #[test]
    fn the_wire_form_says_jsonrpc_2_0_and_omits_absent_members() {
        let wire = encoded(RpcMessage::request("shutdown", Value::Null));
        assert_eq!(
            &wire[..],
            b"Content-Length: 44\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"shutdown\"}"
        );
        let wire = encoded(RpcMessage::notification("note", json!([1])));
        assert!(
            wire.ends_with(b"\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"note\",\"params\":[1]}"),
            "{wire:?}"
        );
        let wire = encoded(RpcMessage::reply(RpcId::Number(1), Ok(Value::Null)));
        assert!(
            wire.ends_with(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":null}"),
            "{wire:?}"
        );
        let wire = encoded(RpcMessage::reply(
            RpcId::Number(2),
            Err(RpcError::new(-1, "no")),
        ));
        assert!(
            wire.ends_with(
                b"{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-1,\"message\":\"no\"}}"
            ),
            "{wire:?}"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed_and_quoted_briefly() {
        let message = malformed(framed("{not json"));
        assert!(
            message.contains("not JSON") && message.contains("{not json"),
            "{message}"
        );
        let long = format!("[{}", "9,".repeat(400));
        let message = malformed(framed(&long));
        assert!(message.len() < 400, "{message}");
        let message = malformed(BytesMut::from(&b"Content-Length: 3\r\n\r\n\"\xff\""[..]));
        assert!(message.contains("not JSON"), "{message}");
    }

    #[test]
    fn batches_are_refused() {
        let message = malformed(framed(r#"[{"jsonrpc":"2.0","method":"a"}]"#));
        assert_eq!(message, "batches are not supported");
    }

    #[test]
    fn the_version_may_be_missing_but_not_wrong() {
        assert_eq!(
            decode_one(framed(r#"{"method":"m","extra":1}"#)).unwrap(),
            Some(RpcMessage::Notification {
                method: "m".into(),
                params: None
            })
        );
        let message = malformed(framed(r#"{"jsonrpc":"1.0","method":"m"}"#));
        assert!(message.contains("not JSON-RPC 2.0"), "{message}");
    }

    #[test]
    fn bodies_that_are_no_message_are_malformed() {
        for (body, why) in [
            ("42", "must be an object"),
            (r#"{"jsonrpc":"2.0"}"#, "neither"),
            (r#"{"id":1}"#, r#"without "result" or "error""#),
            (
                r#"{"id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
                "both",
            ),
            (r#"{"id":1,"method":"m","result":1}"#, "both"),
            (r#"{"id":1,"error":{"code":"x"}}"#, r#""error" is not"#),
            (r#"{"id":1.5,"result":1}"#, "fits an i64"),
            (r#"{"id":[1],"result":1}"#, "not a number, a string or null"),
            (r#"{"id":1,"method":7}"#, "not a string"),
        ] {
            let message = malformed(framed(body));
            assert!(message.contains(why), "{body}: {message}");
        }
    }

    #[test]
    fn rpc_errors_display_their_code_and_message() {
        let error = RpcError::new(RpcError::METHOD_NOT_FOUND, "method not found: x");
        assert_eq!(
            error.to_string(),
            "JSON-RPC error -32601: method not found: x"
        );
    }

    #[test]
    fn ids_serialize_untagged() {
        assert_eq!(serde_json::to_string(&RpcId::Number(-3)).unwrap(), "-3");
        assert_eq!(
            serde_json::to_string(&RpcId::String("a".into())).unwrap(),
            "\"a\""
        );
        assert_eq!(serde_json::to_string(&RpcId::Null).unwrap(), "null");
        let ids: Vec<RpcId> = serde_json::from_str(r#"[1, "b", null]"#).unwrap();
        assert_eq!(
            ids,
            [RpcId::Number(1), RpcId::String("b".into()), RpcId::Null]
        );
    }
}
