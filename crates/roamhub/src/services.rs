//! The `service` subcommands: register a service, list services, and, for operators,
//! certify a service and withdraw its certification.

use anyhow::bail;
use roamhub_node::node::now_unix_ms;
use roamhub_proto::v1 as pb;

use crate::cli::ServiceCommand;
use crate::client::{Client, emit, format_time, status_error};

/// A day in milliseconds, for `--days`.
const DAY_MS: u64 = 86_400_000;

pub async fn run(client: &mut Client, json: bool, command: ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Register { service_id, organisation, declarations } => {
            let declarations = parse_declarations(&declarations)?;
            let request = pb::RegisterServiceRequest { service_id, organisation, declarations };
            let service =
                client.register_service(request).await.map_err(status_error)?.into_inner();
            emit(json, &service, print_service)
        }
        ServiceCommand::List => {
            let request = pb::ListServicesRequest {};
            let reply = client.list_services(request).await.map_err(status_error)?.into_inner();
            emit(json, &reply.services, |all| all.iter().for_each(print_service))
        }
        ServiceCommand::Certify { service_id, declarations, days, valid_until_ms } => {
            let valid_until_unix_ms = match (days, valid_until_ms) {
                (_, Some(until)) => until,
                (Some(days), None) => now_unix_ms().saturating_add(days.saturating_mul(DAY_MS)),
                (None, None) => bail!("give --days or --valid-until-ms"),
            };
            let declarations = parse_declarations(&declarations)?;
            let request =
                pb::CertifyServiceRequest { service_id, declarations, valid_until_unix_ms };
            let service = client.certify_service(request).await.map_err(status_error)?;
            emit(json, &service.into_inner(), print_service)
        }
        ServiceCommand::Decertify { service_id } => {
            let request = pb::DecertifyServiceRequest { service_id };
            let service = client.decertify_service(request).await.map_err(status_error)?;
            emit(json, &service.into_inner(), print_service)
        }
    }
}

fn parse_declarations(specs: &[String]) -> anyhow::Result<Vec<pb::PurposeDeclaration>> {
    specs.iter().map(|spec| parse_declaration(spec)).collect()
}

/// Parses `PURPOSE=ATTR;ATTR`.
fn parse_declaration(spec: &str) -> anyhow::Result<pb::PurposeDeclaration> {
    let Some((purpose, attributes)) = spec.split_once('=') else {
        bail!("declaration {spec:?} is not PURPOSE=ATTR;ATTR");
    };
    let attributes = attributes.split(';').filter(|a| !a.is_empty()).map(str::to_owned).collect();
    Ok(pb::PurposeDeclaration { purpose: purpose.to_owned(), attributes })
}

pub fn print_service(service: &pb::Service) {
    println!("service {} ({})", service.service_id, service.organisation);
    for declaration in &service.declarations {
        println!("  {}: {}", declaration.purpose, declaration.attributes.join(", "));
    }
    match &service.certification {
        Some(certification) => print_certification(certification),
        None => println!("  not certified"),
    }
}

fn print_certification(certification: &pb::Certification) {
    println!(
        "  {} by {} on {}, until {}",
        certification.status,
        certification.by_city,
        format_time(certification.certified_at_unix_ms),
        format_time(certification.valid_until_unix_ms)
    );
    if certification.withdrawn_at_unix_ms != 0 {
        println!(
            "  withdrawn by {} on {}",
            certification.withdrawn_by_city,
            format_time(certification.withdrawn_at_unix_ms)
        );
    }
    for declaration in &certification.declarations {
        println!("    certified {}: {}", declaration.purpose, declaration.attributes.join(", "));
    }
}
