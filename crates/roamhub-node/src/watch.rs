//! Consent watch streams: a service follows the consents given to it, so that it learns of
//! a withdrawal the moment the federation has committed it.
//!
//! A stream first sends every consent the service holds, read linearizably a page at a
//! time as the watcher takes them, then each change this node applies. It subscribes
//! before it reads, so no change falls between the two; a change may then arrive twice,
//! which is harmless as events carry the whole consent. A watcher that falls further
//! behind than the node buffers is told so with `ResourceExhausted` and resubscribes.
//!
//! Paging keeps what a watcher costs the node bounded, however many consents the service
//! holds and however slowly the watcher reads: one page and one buffer.

use std::sync::Arc;

use roamhub_index::{Consent, ConsentId, ConsentsPage, Query, QueryAnswer, ServiceId};
use roamhub_proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tonic::Status;
use tracing::debug;

use crate::config::{WATCH_REPLAY_PAGE, WATCH_STREAM_BUFFERED_MAX};
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
    // The first page is read before the stream is answered, so that a watch the federation
    // cannot serve now fails at once with the reason.
    let mut page = read_page(&node, &service_id, None).await?;

    let (sender, receiver) = mpsc::channel(WATCH_STREAM_BUFFERED_MAX);
    tokio::spawn(async move {
        let _permit = permit;
        loop {
            let last_page = page.len() < WATCH_REPLAY_PAGE;
            for consent in &page {
                if sender.send(Ok(render(&node, consent))).await.is_err() {
                    return;
                }
            }
            let Some(after) = page.last().filter(|_| !last_page) else { break };
            page = match read_page(&node, &service_id, Some(after.consent_id)).await {
                Ok(next) => next,
                Err(status) => {
                    let _ = sender.send(Err(status)).await;
                    return;
                }
            };
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

/// One page of the service's consents after `after`, read linearizably.
async fn read_page(
    node: &Node,
    service_id: &ServiceId,
    after_consent: Option<ConsentId>,
) -> Result<Vec<Consent>, Status> {
    let page =
        ConsentsPage { service_id: service_id.clone(), limit: WATCH_REPLAY_PAGE, after_consent };
    match node.read(Query::ConsentsOfService(page)).await? {
        QueryAnswer::Consents(consents) => Ok(consents),
        _ => Err(Status::internal("the index answered another query")),
    }
}

fn render(node: &Node, consent: &Consent) -> pb::ServiceConsent {
    let pseudonym = node.identifier_key().pseudonym(&consent.citizen_id, &consent.service_id);
    convert::pb_service_consent(consent, pseudonym, now_unix_ms())
}
