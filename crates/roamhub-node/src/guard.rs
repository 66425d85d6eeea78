//! The door of each listener: every request is authenticated by the [`Transport`] and
//! checked against the listener's [`Policy`] before any handler sees it.
//!
//! A refused request is answered at once with `Unauthenticated` or `PermissionDenied` and
//! logged with the RPC, the caller's role and the reason: never a field of the request.
//! An admitted request carries its [`Caller`] in its extensions, for handlers that must
//! know who asks (a service may act only as itself; an operator acts for its own city).
//!
//! On the way out, the guard gives a request over the listener's size limit the status
//! gRPC clients expect for it, `ResourceExhausted` (tonic answers `OutOfRange`).
//!
//! While a [`StorageFault`] is set, every admitted call but health is answered
//! `Unavailable` with its reason: a node with corrupt storage serves nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::{Code, Status};
use tower::{Layer, Service};
use tracing::warn;

use crate::fault::StorageFault;
use crate::tls::{Caller, PeerInfo, Transport};

/// Calls still answered while the node's storage is corrupt: they say it is not serving.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Decides whether `caller` may call the gRPC method at `path`
/// (`/package.Service/Method`); `Err` says why not.
pub type Policy = Arc<dyn Fn(&str, &Caller) -> Result<(), String> + Send + Sync>;

/// Wraps a listener's services in a [`Guard`].
#[derive(Clone)]
pub struct GuardLayer {
    transport: Transport,
    policy: Policy,
    fault: Option<StorageFault>,
}

impl GuardLayer {
    pub fn new(transport: Transport, policy: Policy) -> GuardLayer {
        GuardLayer { transport, policy, fault: None }
    }

    /// Refuses every call but health while `fault` is set.
    pub fn refusing_on(self, fault: StorageFault) -> GuardLayer {
        GuardLayer { fault: Some(fault), ..self }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            transport: self.transport.clone(),
            policy: self.policy.clone(),
            fault: self.fault.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    transport: Transport,
    policy: Policy,
    fault: Option<StorageFault>,
}

impl<S> Guard<S> {
    fn admit(&self, path: &str, peer: Option<&PeerInfo>) -> Result<Caller, Status> {
        let caller = self.transport.authenticate(peer).inspect_err(|status| {
            warn!(rpc = path, reason = status.message(), "call refused: not authenticated");
        })?;
        (self.policy)(path, &caller).map_err(|reason| {
            warn!(rpc = path, %caller, %reason, "call refused");
            Status::permission_denied(reason)
        })?;
        if !path.starts_with(HEALTH_PREFIX)
            && let Some(refusal) = self.fault.as_ref().and_then(StorageFault::status)
        {
            return Err(refusal);
        }
        Ok(caller)
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.admit(request.uri().path(), request.extensions().get::<PeerInfo>()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                let answered = self.inner.call(request);
                Box::pin(async move { answered.await.map(too_large_as_exhausted) })
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// Answers a request refused for its size with `ResourceExhausted`, keeping the reason.
fn too_large_as_exhausted<R>(mut response: http::Response<R>) -> http::Response<R> {
    let Some(status) = Status::from_header_map(response.headers()) else { return response };
    let too_large = status.code() == Code::OutOfRange
        && status.message().contains("decoded message length too large");
    if too_large {
        let reason = format!("the request is larger than this node accepts: {}", status.message());
        // Only fails for a message that cannot be a header, which this one always can.
        let _ = Status::resource_exhausted(reason).add_header(response.headers_mut());
    }
    response
}

/// The caller the guard admitted, for a handler.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::internal("the request did not pass the listener's guard"))
}
