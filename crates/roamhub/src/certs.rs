//! `roamhub certs`: a federation's certificate authority in a folder, enough for a
//! development federation.
//!
//! The folder holds the authority's certificate (`ca.pem`), its private key (`ca.key`,
//! readable by its owner only), the revocation list every node loads (`crl.pem`) and the
//! serials revoked so far (`revoked.txt`). Each certificate it issues names one [`Role`] in
//! a `roamhub://` URI; node certificates also name the hosts peers and clients dial.
//!
//! In production a federation keeps its authority offline, or uses an existing one: any CA
//! will do whose certificates carry the same URIs and extended key usages.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use roamhub_index::{CityId, ServiceId};
use roamhub_node::Role;
use roamhub_node::files::{IfExists, write_owner_only};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use crate::cli::CertsCommand;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const CRL: &str = "crl.pem";
const REVOKED: &str = "revoked.txt";
/// How long a revocation list is said to hold before the next one; nodes reload the file
/// whenever it changes, so this is a promise to relying parties, not a timer.
const CRL_NEXT_UPDATE_DAYS: i64 = 30;
/// Hosts a node certificate names when none are given: enough for loopback.
pub const LOOPBACK_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// Runs one `roamhub certs` subcommand, printing what it wrote.
pub fn run(command: CertsCommand) -> anyhow::Result<()> {
    let (issue_args, role, hosts) = match command {
        CertsCommand::Ca { dir, name, days } => {
            let paths = create_ca(&dir, &name, days)?;
            println!("certificate authority: {}", paths.cert.display());
            println!("its key (keep it offline): {}", paths.key.display());
            println!("revocation list (give it to every node): {}", paths.crl.display());
            return Ok(());
        }
        CertsCommand::Revoke { dir, cert } => {
            let serial = revoke(&dir, &cert)?;
            let crl = CaPaths::in_dir(&dir).crl;
            println!("revoked serial {serial}; nodes reload {} within seconds", crl.display());
            return Ok(());
        }
        CertsCommand::Node { issue, city, node_id, hosts } => {
            let city_id = CityId::parse("--city", &city).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(node_id > 0, "--node-id must be positive");
            let hosts = match hosts.is_empty() {
                true => LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect(),
                false => hosts,
            };
            (issue, Role::Node { city_id, node_id }, hosts)
        }
        CertsCommand::Operator { issue, city } => {
            let city_id = CityId::parse("--city", &city).map_err(anyhow::Error::msg)?;
            (issue, Role::Operator { city_id }, Vec::new())
        }
        CertsCommand::Service { issue, service } => {
            let service_id = ServiceId::parse("--service", &service).map_err(anyhow::Error::msg)?;
            (issue, Role::Service { service_id }, Vec::new())
        }
    };
    let out = issue_args.out.as_deref().unwrap_or(&issue_args.dir);
    let issued = issue(&issue_args.dir, &role, &hosts, Validity::days(issue_args.days), out)?;
    println!("{role}: {} (key {})", issued.cert.display(), issued.key.display());
    Ok(())
}

/// The authority's files in `dir`.
pub struct CaPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub crl: PathBuf,
    revoked: PathBuf,
}

impl CaPaths {
    pub fn in_dir(dir: &Path) -> CaPaths {
        CaPaths {
            cert: dir.join(CA_CERT),
            key: dir.join(CA_KEY),
            crl: dir.join(CRL),
            revoked: dir.join(REVOKED),
        }
    }
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (for clocks a little behind) for `days` days.
    pub fn days(days: u32) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days.into()),
        }
    }
}

/// A certificate and its key, as written.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Creates a new authority in `dir`, with an empty revocation list. Refuses to overwrite
/// an existing authority's key.
pub fn create_ca(dir: &Path, name: &str, days: u32) -> anyhow::Result<CaPaths> {
    let paths = CaPaths::in_dir(dir);
    if paths.key.exists() {
        bail!("{} already holds a certificate authority; not overwriting it", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial()?);
    let validity = Validity::days(days);
    (params.not_before, params.not_after) = (validity.not_before, validity.not_after);
    let key = KeyPair::generate().context("generating the authority's key")?;
    let certificate = params.self_signed(&key).context("signing the authority's certificate")?;

    write_owner_only(&paths.key, key.serialize_pem().as_bytes(), IfExists::Refuse)?;
    std::fs::write(&paths.cert, certificate.pem())?;
    std::fs::write(&paths.revoked, "")?;
    write_crl(&paths)?;
    Ok(paths)
}

/// Issues a certificate for `role`, signed by the authority in `ca_dir`, into
/// `out_dir/<name>.pem` and `out_dir/<name>.key`. `hosts` (names or addresses) go into a
/// node's certificate so that clients can check they reached the node they dialled.
pub fn issue(
    ca_dir: &Path,
    role: &Role,
    hosts: &[String],
    validity: Validity,
    out_dir: &Path,
) -> anyhow::Result<Issued> {
    let ca = load_issuer(&CaPaths::in_dir(ca_dir))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&role.to_string());
    params.serial_number = Some(random_serial()?);
    (params.not_before, params.not_after) = (validity.not_before, validity.not_after);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.subject_alt_names.push(SanType::URI(role.uri().try_into()?));
    if let Role::Node { .. } = role {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
        for host in hosts {
            params.subject_alt_names.push(match host.parse::<IpAddr>() {
                Ok(address) => SanType::IpAddress(address),
                Err(_) => SanType::DnsName(host.as_str().try_into()?),
            });
        }
    }
    let key = KeyPair::generate().context("generating a key")?;
    let certificate = params.signed_by(&key, &ca).context("signing the certificate")?;

    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let name = file_name(role);
    let issued = Issued {
        cert: out_dir.join(format!("{name}.pem")),
        key: out_dir.join(format!("{name}.key")),
    };
    write_owner_only(&issued.key, key.serialize_pem().as_bytes(), IfExists::Replace)?;
    std::fs::write(&issued.cert, certificate.pem())?;
    Ok(issued)
}

/// Adds the certificate in `cert` to the authority's revocation list and rewrites
/// `crl.pem`; nodes pick it up within seconds. Answers the revoked serial, in hex.
pub fn revoke(ca_dir: &Path, cert: &Path) -> anyhow::Result<String> {
    let paths = CaPaths::in_dir(ca_dir);
    let serial = serial_of(cert)?;
    let mut revoked = std::fs::read_to_string(&paths.revoked)
        .with_context(|| format!("reading {}", paths.revoked.display()))?;
    if !revoked.lines().any(|line| line.split_whitespace().next() == Some(serial.as_str())) {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        writeln!(revoked, "{serial} {now}")?;
        std::fs::write(&paths.revoked, revoked)?;
    }
    write_crl(&paths)?;
    Ok(serial)
}

/// The serial number of the first certificate in a PEM file, in hex.
fn serial_of(cert: &Path) -> anyhow::Result<String> {
    let der = CertificateDer::from_pem_file(cert)
        .with_context(|| format!("{} holds no PEM certificate", cert.display()))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&der).map_err(|error| {
        anyhow::anyhow!("{} is not a readable certificate: {error}", cert.display())
    })?;
    Ok(hex::encode(certificate.raw_serial()))
}

fn write_crl(paths: &CaPaths) -> anyhow::Result<()> {
    let ca = load_issuer(paths)?;
    let listed = std::fs::read_to_string(&paths.revoked)
        .with_context(|| format!("reading {}", paths.revoked.display()))?;
    let mut revoked_certs = Vec::new();
    for line in listed.lines().filter(|line| !line.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let serial = hex::decode(fields.next().unwrap_or_default())
            .with_context(|| format!("a bad serial in {}", paths.revoked.display()))?;
        let at = fields.next().and_then(|at| at.parse::<i64>().ok()).unwrap_or_default();
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: OffsetDateTime::from_unix_timestamp(at)?,
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let now = OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + Duration::days(CRL_NEXT_UPDATE_DAYS),
        // Each list supersedes the last; the count of revocations only grows.
        crl_number: SerialNumber::from((revoked_certs.len() as u64) + 1),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&ca).context("signing the revocation list")?;
    // Replaced in one rename, so a node never reads half a list.
    let fresh = paths.crl.with_extension("pem.new");
    std::fs::write(&fresh, crl.pem()?)?;
    std::fs::rename(&fresh, &paths.crl)?;
    Ok(())
}

fn load_issuer(paths: &CaPaths) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let key = std::fs::read_to_string(&paths.key)
        .with_context(|| format!("reading the authority's key {}", paths.key.display()))?;
    let key = KeyPair::from_pem(&key).context("parsing the authority's key")?;
    let cert = std::fs::read_to_string(&paths.cert)
        .with_context(|| format!("reading the authority's certificate {}", paths.cert.display()))?;
    Issuer::from_ca_cert_pem(&cert, key).context("parsing the authority's certificate")
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "roamhub federation");
    name
}

/// A positive random 128-bit serial, as RFC 5280 asks.
fn random_serial() -> anyhow::Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The file name a role's certificate is written under.
pub fn file_name(role: &Role) -> String {
    match role {
        Role::Node { city_id, node_id } => format!("node-{city_id}-{node_id}"),
        Role::Operator { city_id } => format!("operator-{city_id}"),
        Role::Service { service_id } => format!("service-{service_id}"),
    }
}
