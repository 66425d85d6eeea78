//! Consent watch streams: a service follows the consents given to it, so that it learns of
//! a withdrawal the moment the federation has committed it.
//!
//! A stream first sends every consent the service holds, read linearizably, then each
//! change this node applies. It subscribes before it reads, so no change falls between the
//! two; a change may then arrive twice, which is harmless as events carry the whole
//! consent. A watcher that falls further behind than the node buffers is told so with
//! `ResourceExhausted` and resubscribes.

use std::sync::Arc;

use roamhub_index::{Consent, Query, QueryAnswer, ServiceId};
use roamhub_proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tonic::Status;
use tracing::debug;

use crate::config::WATCH_STREAM_BUFFERED_MAX;
use crate::convert;
use crate::node::{Node, now_unix_ms};

pub type ConsentStream = tokio_stream::wrappers::ReceiverStream<Result<pb::ServiceConsent, Status>>;

/// Starts a watch of `service_id`'s consents; `permit` bounds the streams a node serves.
pub async fn watch_consents(
    node: Arc<Node>,
    service_id: ServiceId,
    permit: OwnedSemaphorePermit,
) -> Result<ConsentStream, Status> {
    let mut changes = node.reader().subscribe_consents();
    let current = match node.read(Query::ConsentsOfService(service_id.clone())).await? {
        QueryAnswer::Consents(consents) => consents,
        _ => return Err(Status::internal("the index answered another query")),
    };

    let (sender, receiver) = mpsc::channel(WATCH_STREAM_BUFFERED_MAX);
    tokio::spawn(async move {
        let _permit = permit;
        for consent in &current {
            if sender.send(Ok(render(&node, consent))).await.is_err() {
                return;
            }
        }
        loop {
            let event = match changes.recv().await {
                Ok(consent) if consent.service_id == service_id => Ok(render(&node, &consent)),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => Err(Status::resource_exhausted(format!(
                    "watcher lagged by {missed}; resubscribe"
                ))),
                Err(RecvError::Closed) => Err(Status::unavailable("the node is stopping")),
            };
            let last = event.is_err();
            if sender.send(event).await.is_err() || last {
                debug!("consent watch ended");
                return;
            }
        }
    });
    Ok(ConsentStream::new(receiver))
}

fn render(node: &Node, consent: &Consent) -> pb::ServiceConsent {
    let pseudonym = node.identifier_key().pseudonym(&consent.citizen_id, &consent.service_id);
    convert::pb_service_consent(consent, pseudonym, now_unix_ms())
}
