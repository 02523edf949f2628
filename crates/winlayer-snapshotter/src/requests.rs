//! Requests that cannot be read are answered as containerd answers them, not as tonic does:
//! * larger than the service's limit: tonic says OutOfRange; gRPC (and containerd's grpc-go)
//!   say ResourceExhausted;
//! * not decodable (a key, name, label or filter that is not UTF-8, a truncated message):
//!   tonic-prost says Internal; containerd says InvalidArgument, the request's fault.
//!
//! Both happen before a service sees the request, so the rewrite is a layer over the server's
//! responses: tonic answers them trailers-only, the status in the response headers.

use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};

/// What prost's decode errors start with (`prost::DecodeError`'s `Display`).
const DECODE_FAILURE: &str = "failed to decode Protobuf message";

/// The layer, for `tonic::transport::Server::builder().layer(…)`: covers every service served.
pub type Layer = tower::util::MapResponseLayer<fn(http::Response<Body>) -> http::Response<Body>>;

/// The layer.
pub fn layer() -> Layer {
    tower::util::MapResponseLayer::new(answer_unreadable::<Body>)
}

/// Rewrites the status of a response that refuses an unreadable request; any other response
/// is returned as it is.
pub fn answer_unreadable<B>(mut response: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let answer = match status.code() {
        // tonic uses OutOfRange only for its message size limits.
        Code::OutOfRange => {
            Status::resource_exhausted(format!("request too large for winlayer serve: {}", status.message()))
        }
        Code::Internal if status.message().starts_with(DECODE_FAILURE) => {
            Status::invalid_argument(format!("malformed request: {}", status.message()))
        }
        _ => return response,
    };
    let headers = response.headers_mut();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if answer.add_header(headers).is_err() {
        // Only a message that cannot be a header fails; the code alone still says it.
        headers.insert("grpc-status", http::HeaderValue::from(answer.code() as i32));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: Status) -> http::Response<()> {
        let mut response = http::Response::new(());
        status.add_header(response.headers_mut()).unwrap();
        answer_unreadable(response)
    }

    fn status_of(response: &http::Response<()>) -> Status {
        Status::from_header_map(response.headers()).unwrap()
    }

    #[test]
    fn size_limit_becomes_resource_exhausted() {
        let s = status_of(&refused(Status::out_of_range(
            "Error, decoded message length too large: found 17000000 bytes, the limit is: 16777216 bytes",
        )));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("found 17000000 bytes"), "{}", s.message());
    }

    #[test]
    fn decode_failure_becomes_invalid_argument() {
        let s = status_of(&refused(Status::internal(
            "failed to decode Protobuf message: ListSnapshotsRequest.filters: invalid string value: data is not UTF-8 encoded",
        )));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("ListSnapshotsRequest.filters"), "{}", s.message());
    }

    #[test]
    fn other_answers_are_kept() {
        for status in [Status::not_found("snapshot x: not found"), Status::internal("snapshotter task failed")] {
            let s = status_of(&refused(status.clone()));
            assert_eq!((s.code(), s.message()), (status.code(), status.message()));
        }
        let untouched = answer_unreadable(http::Response::new(()));
        assert!(untouched.headers().is_empty());
    }
}
