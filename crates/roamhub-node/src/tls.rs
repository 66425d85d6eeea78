//! Mutual TLS: who is on the other end of every connection, proved by a certificate from
//! the federation's certificate authority.
//!
//! A certificate names its holder's [`Role`] in a subject alternative name URI:
//! `roamhub://node/<city>/<raft node id>` for a city's node, `roamhub://operator/<city>`
//! for a city's operator, `roamhub://service/<service id>` for a service. Both listeners
//! of a node require a client certificate; nodes dial each other with their own.
//!
//! Certificates are files, and files change: [`Tls`] reloads them when their modification
//! time moves, so a node takes a renewed certificate or a new revocation list without a
//! restart. A connection proved at handshake is proved again on its next request after a
//! reload, so a revoked certificate loses its open connections too.
//!
//! Without certificates a node runs [`Transport::Insecure`]: plaintext, every caller
//! trusted, for local experiments only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use roamhub_index::{CityId, ServiceId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::{error, info, warn};

use crate::config::{
    ACCEPT_RETRY_PAUSE, ACCEPTED_QUEUE_MAX, CONNECT_TIMEOUT, TLS_HANDSHAKE_TIMEOUT,
    TLS_HANDSHAKES_IN_FLIGHT_MAX, TLS_RELOAD_INTERVAL,
};

/// The URI scheme of roles in certificates.
const ROLE_URI_PREFIX: &str = "roamhub://";
/// gRPC runs over HTTP/2, negotiated by ALPN.
const ALPN_H2: &[u8] = b"h2";

/// Who a certificate speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A city's node: its Raft peers and its forwarded work.
    Node { city_id: CityId, node_id: u64 },
    /// A city's operator: registers and certifies services, manages members, and carries
    /// its citizens' requests from the city's portal.
    Operator { city_id: CityId },
    /// A registered service: resolves citizens and watches its consents.
    Service { service_id: ServiceId },
}

impl Role {
    /// The subject alternative name URI that names this role in a certificate.
    pub fn uri(&self) -> String {
        match self {
            Role::Node { city_id, node_id } => format!("{ROLE_URI_PREFIX}node/{city_id}/{node_id}"),
            Role::Operator { city_id } => format!("{ROLE_URI_PREFIX}operator/{city_id}"),
            Role::Service { service_id } => format!("{ROLE_URI_PREFIX}service/{service_id}"),
        }
    }

    /// Reads a role URI; `None` for any other URI.
    pub fn from_uri(uri: &str) -> Option<Role> {
        let path = uri.strip_prefix(ROLE_URI_PREFIX)?;
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["node", city, node_id] => Some(Role::Node {
                city_id: CityId::parse("certificate", city).ok()?,
                node_id: node_id.parse().ok().filter(|id| *id > 0)?,
            }),
            ["operator", city] => {
                Some(Role::Operator { city_id: CityId::parse("certificate", city).ok()? })
            }
            ["service", service] => {
                Some(Role::Service { service_id: ServiceId::parse("certificate", service).ok()? })
            }
            _ => None,
        }
    }

    /// The role read from a certificate's subject alternative names, if it names one.
    pub fn from_certificate(der: &[u8]) -> Option<Role> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let names = certificate.subject_alternative_name().ok()??;
        names.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Role::from_uri(uri),
            _ => None,
        })
    }
}

impl Role {
    /// What kind of holder the role is, in words.
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Node { .. } => "node",
            Role::Operator { .. } => "city operator",
            Role::Service { .. } => "service",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Node { city_id, node_id } => write!(f, "node {node_id} of {city_id}"),
            Role::Operator { city_id } => write!(f, "operator of {city_id}"),
            Role::Service { service_id } => write!(f, "service {service_id}"),
        }
    }
}

/// Who made a request, as the transport proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A plaintext connection: nothing is proved and everything is allowed.
    Insecure,
    /// A verified certificate naming a role.
    Certified(Role),
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Insecure => f.write_str("an unauthenticated caller"),
            Caller::Certified(role) => role.fmt(f),
        }
    }
}

/// The files a node or client proves itself with and trusts others by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates of the federation's certificate authority: the only trust anchors.
    pub ca: PathBuf,
    /// PEM certificate chain of this node or client, leaf first.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM revocation lists of the certificate authority; none means nothing is revoked.
    pub crl: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.ca), Some(&self.cert), Some(&self.key), self.crl.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// Modification times, to notice a replaced file.
    fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.paths().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
    }
}

/// One consistent set of rustls configurations built from the files.
struct Loaded {
    /// Counts reloads; a connection proved under an older generation is proved again.
    generation: u64,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    verifier: Arc<dyn ClientCertVerifier>,
    stamps: Vec<Option<SystemTime>>,
}

/// The node's or client's certificates, reloaded when their files change.
pub struct Tls {
    files: TlsFiles,
    loaded: RwLock<Arc<Loaded>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificates from {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certificates.is_empty(), "{} holds no certificate", path.display());
    Ok(certificates)
}

fn load(files: &TlsFiles, generation: u64) -> anyhow::Result<Loaded> {
    let stamps = files.stamps();
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(&files.ca)? {
        roots.add(certificate).with_context(|| format!("a CA in {}", files.ca.display()))?;
    }
    let roots = Arc::new(roots);
    let chain = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading the private key in {}", files.key.display()))?;
    let crls = match &files.crl {
        Some(path) => CertificateRevocationListDer::pem_file_iter(path)
            .with_context(|| format!("reading revocation lists from {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing revocation lists in {}", path.display()))?,
        None => Vec::new(),
    };

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .with_crls(crls.clone())
        .only_check_end_entity_revocation()
        .build()
        .context("building the client certificate verifier")?;
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain.clone(), key.clone_key())
        .context("this node's certificate and key do not match")?;
    server.alpn_protocols = vec![ALPN_H2.to_vec()];

    let server_verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .build()
            .context("building the server certificate verifier")?;
    let mut client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_webpki_verifier(server_verifier)
        .with_client_auth_cert(chain, key)
        .context("the client certificate and key do not match")?;
    client.alpn_protocols = vec![ALPN_H2.to_vec()];

    Ok(Loaded { generation, server: Arc::new(server), client: Arc::new(client), verifier, stamps })
}

impl Tls {
    /// Reads and checks the files; an error names the file at fault.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Tls>> {
        let loaded = load(&files, 0)?;
        Ok(Arc::new(Tls { files, loaded: RwLock::new(Arc::new(loaded)) }))
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reloads the files when any changed since the last load. A set of files that does
    /// not load keeps the previous configuration in force.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let current = self.current();
        if self.files.stamps() == current.stamps {
            return Ok(false);
        }
        let loaded = load(&self.files, current.generation + 1)?;
        *self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(loaded);
        Ok(true)
    }

    /// Checks the files every `TLS_RELOAD_INTERVAL` until `shutdown` turns true.
    pub async fn watch_files(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TLS_RELOAD_INTERVAL) => {}
                _ = stopped(&mut shutdown) => return,
            }
            match self.reload_if_changed() {
                Ok(true) => info!("certificates reloaded"),
                Ok(false) => {}
                Err(error) => warn!(error = format!("{error:#}"), "certificates not reloaded"),
            }
        }
    }
}

/// How a node's listeners and outgoing connections are secured.
#[derive(Clone)]
pub enum Transport {
    /// Plaintext, every caller trusted: local experiments only.
    Insecure,
    /// Mutual TLS under the federation's certificate authority.
    Tls(Arc<Tls>),
}

/// What a connection proved at its handshake; tonic hands it to every request on it.
#[derive(Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    proof: Option<Arc<PeerCertificate>>,
}

struct PeerCertificate {
    der: CertificateDer<'static>,
    role: Option<Role>,
    not_after_unix: i64,
    /// The configuration generation this certificate was last verified under.
    verified_generation: AtomicU64,
}

impl Transport {
    /// Accepted connections of `listener`, with the TLS handshake done under TLS; a
    /// connection whose handshake fails is logged and dropped. Nagle's algorithm is off:
    /// gRPC writes headers, body and trailers apart, and Nagle would hold each reply
    /// behind a delayed ACK.
    pub fn incoming(
        &self,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> ReceiverStream<std::io::Result<Connection>> {
        let (accepted, stream) = mpsc::channel(ACCEPTED_QUEUE_MAX);
        tokio::spawn(accept_loop(self.clone(), listener, accepted, shutdown));
        ReceiverStream::new(stream)
    }

    /// Who made a request: the role its connection's certificate names, verified again when
    /// the certificates were reloaded since, and refused once the certificate has expired.
    pub fn authenticate(&self, peer: Option<&PeerInfo>) -> Result<Caller, tonic::Status> {
        let Transport::Tls(tls) = self else { return Ok(Caller::Insecure) };
        let unauthenticated = tonic::Status::unauthenticated;
        let proof = peer
            .and_then(|peer| peer.proof.as_ref())
            .ok_or_else(|| unauthenticated("the connection presented no client certificate"))?;
        let now = UnixTime::now();
        if now.as_secs() as i64 > proof.not_after_unix {
            return Err(unauthenticated("the client certificate has expired"));
        }
        let current = tls.current();
        if proof.verified_generation.load(Ordering::Acquire) != current.generation {
            current.verifier.verify_client_cert(&proof.der, &[], now).map_err(|error| {
                tonic::Status::unauthenticated(format!(
                    "the client certificate is no longer accepted: {error}"
                ))
            })?;
            proof.verified_generation.store(current.generation, Ordering::Release);
        }
        match &proof.role {
            Some(role) => Ok(Caller::Certified(role.clone())),
            None => Err(tonic::Status::permission_denied(
                "the client certificate names no roamhub role (a roamhub:// URI)",
            )),
        }
    }

    /// A lazily connected channel to `addr` (`host:port`), each call bounded by
    /// `request_timeout`.
    pub fn channel(&self, addr: &str, request_timeout: Duration) -> anyhow::Result<Channel> {
        let scheme = match self {
            Transport::Insecure => "http",
            Transport::Tls(_) => "https",
        };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .with_context(|| format!("{addr:?} is not a host:port"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(request_timeout)
            .tcp_nodelay(true);
        Ok(match self {
            Transport::Insecure => endpoint.connect_lazy(),
            Transport::Tls(tls) => {
                let tls = tls.clone();
                endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
                    connect_tls(tls.clone(), uri)
                }))
            }
        })
    }
}

/// Resolves once `shutdown` turns true.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Dials `uri` and completes the TLS handshake under the certificates in force now.
async fn connect_tls(
    tls: Arc<Tls>,
    uri: Uri,
) -> std::io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    let invalid = |reason: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason);
    let host = uri.host().ok_or_else(|| invalid("the address has no host"))?;
    let port = uri.port_u16().ok_or_else(|| invalid("the address has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let server_name =
        ServerName::try_from(host.clone()).map_err(|_| invalid("the host is not a valid name"))?;
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let connector = tokio_rustls::TlsConnector::from(tls.current().client.clone());
    let stream = connector.connect(server_name, tcp).await?;
    Ok(hyper_util::rt::TokioIo::new(stream))
}

async fn accept_loop(
    transport: Transport,
    listener: TcpListener,
    accepted: mpsc::Sender<std::io::Result<Connection>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let handshakes = Arc::new(Semaphore::new(TLS_HANDSHAKES_IN_FLIGHT_MAX));
    loop {
        let (tcp, remote) = tokio::select! {
            next = listener.accept() => match next {
                Ok(next) => next,
                Err(error) => {
                    warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let _ = tcp.set_nodelay(true);
        let tls = match &transport {
            Transport::Insecure => {
                let connection = Connection {
                    io: Io::Plain(tcp),
                    peer: PeerInfo { remote: Some(remote), proof: None },
                };
                if accepted.send(Ok(connection)).await.is_err() {
                    return;
                }
                continue;
            }
            Transport::Tls(tls) => tls.clone(),
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            warn!(%remote, "connection dropped: too many TLS handshakes in flight");
            continue;
        };
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match handshake(&tls, tcp, remote).await {
                Ok(connection) => {
                    let _ = accepted.send(Ok(connection)).await;
                }
                // The peer's address and the reason only: never what the peer sent.
                Err(error) => warn!(%remote, %error, "TLS handshake refused"),
            }
        });
    }
}

async fn handshake(tls: &Tls, tcp: TcpStream, remote: SocketAddr) -> anyhow::Result<Connection> {
    let loaded = tls.current();
    let acceptor = tokio_rustls::TlsAcceptor::from(loaded.server.clone());
    let stream = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| anyhow::anyhow!("no handshake within {TLS_HANDSHAKE_TIMEOUT:?}"))??;
    let (_, session) = stream.get_ref();
    let der = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| der.clone().into_owned())
        .ok_or_else(|| anyhow::anyhow!("no client certificate"))?;
    let not_after_unix = x509_parser::parse_x509_certificate(&der)
        .map(|(_, certificate)| certificate.validity().not_after.timestamp())
        .map_err(|error| anyhow::anyhow!("unreadable client certificate: {error}"))?;
    let role = Role::from_certificate(&der);
    let proof = PeerCertificate {
        der,
        role,
        not_after_unix,
        verified_generation: AtomicU64::new(loaded.generation),
    };
    let peer = PeerInfo { remote: Some(remote), proof: Some(Arc::new(proof)) };
    Ok(Connection { io: Io::Tls(Box::new(stream)), peer })
}

/// An accepted connection, plaintext or TLS, carrying what its peer proved.
pub struct Connection {
    io: Io,
    peer: PeerInfo,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Logs, once at start, that a node runs without TLS.
pub fn warn_if_insecure(transport: &Transport) {
    if matches!(transport, Transport::Insecure) {
        error!(
            "INSECURE: plaintext listeners, no caller is authenticated and anyone who reaches \
             a port may join Raft, write the index or resolve citizens; for local experiments only"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_uris_round_trip() {
        let roles = [
            Role::Node { city_id: CityId::parse("t", "nl-eindhoven").unwrap(), node_id: 3 },
            Role::Operator { city_id: CityId::parse("t", "fi-helsinki").unwrap() },
            Role::Service { service_id: ServiceId::parse("t", "ride.share").unwrap() },
        ];
        for role in roles {
            assert_eq!(Role::from_uri(&role.uri()), Some(role));
        }
    }

    #[test]
    fn other_uris_name_no_role() {
        for uri in [
            "https://example.org/",
            "roamhub://node/nl-eindhoven/0",
            "roamhub://node/nl-eindhoven/x",
            "roamhub://operator/Not A City",
            "roamhub://citizen/abc",
            "roamhub://service/a/b",
        ] {
            assert_eq!(Role::from_uri(uri), None, "{uri}");
        }
    }
}
