//! Validated names and ids.
//!
//! Every id is a newtype that can only be built through `parse`, which checks its shape and
//! names the request field at fault. Ids that arrive through Raft are checked again as they
//! are decoded, and whole commands when applied (see `Command::check`), so a replica never
//! trusts the node that proposed them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::IndexError;
use crate::limits::{PURPOSE_LEN_MAX, TEXT_LEN_MAX};

/// Checks that `value` is 1 to `len_max` characters, each accepted by `allowed`.
fn check_token(
    field: &str,
    value: &str,
    len_max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), IndexError> {
    if value.is_empty() {
        return Err(IndexError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > len_max {
        return Err(IndexError::invalid(field, format!("longer than {len_max} characters")));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(IndexError::invalid(field, format!("character {bad:?} is not allowed")));
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Checks free text: non-empty, bounded, no control characters.
pub fn check_text(field: &str, value: &str) -> Result<(), IndexError> {
    check_token(field, value, TEXT_LEN_MAX, |c| !c.is_control())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        // Decoded through `parse`, like every value from a request: an id read from the
        // log or a peer is checked before any code relies on its shape.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = IndexError;

            fn try_from(value: String) -> Result<$name, IndexError> {
                $name::parse(stringify!($name), &value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A city operator of the federation: two-letter country code, '-', and a name,
    /// e.g. `nl-eindhoven`.
    CityId
);

impl CityId {
    pub fn parse(field: &str, value: &str) -> Result<CityId, IndexError> {
        check_token(field, value, 48, is_name_char)?;
        let country = value.split('-').next().unwrap_or_default();
        let shaped = country.len() == 2
            && country.chars().all(|c| c.is_ascii_lowercase())
            && value.len() > 3;
        if !shaped {
            return Err(IndexError::invalid(
                field,
                "must look like 'cc-name', e.g. 'nl-eindhoven'",
            ));
        }
        Ok(CityId(value.to_owned()))
    }

    /// The upper-case country code the id starts with.
    pub fn country(&self) -> String {
        self.0.get(..2).unwrap_or_default().to_ascii_uppercase()
    }
}

string_id!(
    /// A citizen's pseudonymous federation id: `c-` and 32 lowercase hex digits, drawn at
    /// random by the node that registers the citizen. Never derived from a national id.
    CitizenId
);

impl CitizenId {
    pub fn parse(field: &str, value: &str) -> Result<CitizenId, IndexError> {
        let digits = value.strip_prefix("c-").unwrap_or_default();
        let shaped = digits.len() == 32
            && digits.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !shaped {
            return Err(IndexError::invalid(field, "must be 'c-' and 32 lowercase hex digits"));
        }
        Ok(CitizenId(value.to_owned()))
    }

    /// Builds the id from 16 random bytes drawn outside the state machine.
    pub fn from_random(bytes: [u8; 16]) -> CitizenId {
        let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        CitizenId(format!("c-{digits}"))
    }
}

string_id!(
    /// A registered service: lowercase letters, digits, '-' and '.', 2 to 64 characters.
    ServiceId
);

impl ServiceId {
    pub fn parse(field: &str, value: &str) -> Result<ServiceId, IndexError> {
        check_token(field, value, 64, |c| is_name_char(c) || c == '.')?;
        if value.len() < 2 {
            return Err(IndexError::invalid(field, "shorter than 2 characters"));
        }
        Ok(ServiceId(value.to_owned()))
    }
}

string_id!(
    /// A data category, e.g. `mobility` or `health`: lowercase letters, digits and '-'.
    Category
);

impl Category {
    pub fn parse(field: &str, value: &str) -> Result<Category, IndexError> {
        check_token(field, value, 32, is_name_char)?;
        Ok(Category(value.to_owned()))
    }
}

string_id!(
    /// What a service uses data for, e.g. `trip-planning`, or a DPV term such as
    /// `dpv:ServiceProvision`.
    Purpose
);

impl Purpose {
    pub fn parse(field: &str, value: &str) -> Result<Purpose, IndexError> {
        check_token(field, value, PURPOSE_LEN_MAX, |c| {
            is_name_char(c) || c.is_ascii_alphabetic() || c == ':'
        })?;
        Ok(Purpose(value.to_owned()))
    }
}

string_id!(
    /// An attribute within a data category: `category.path`, e.g. `mobility.trips`, or
    /// `category.*` for every attribute of the category.
    Attribute
);

impl Attribute {
    pub fn parse(field: &str, value: &str) -> Result<Attribute, IndexError> {
        check_token(field, value, 96, |c| is_name_char(c) || c == '.' || c == '_' || c == '*')?;
        let Some((category, path)) = value.split_once('.') else {
            return Err(IndexError::invalid(field, "must look like 'category.path'"));
        };
        Category::parse(field, category)?;
        let path_ok =
            path == "*" || path.split('.').all(|part| !part.is_empty() && !part.contains('*'));
        if !path_ok {
            return Err(IndexError::invalid(field, "path must be dotted names or a lone '*'"));
        }
        Ok(Attribute(value.to_owned()))
    }

    /// The data category the attribute belongs to.
    pub fn category(&self) -> Category {
        Category(self.0.split_once('.').map(|(c, _)| c).unwrap_or(&self.0).to_owned())
    }

    /// The part after the category, `*` for a wildcard.
    pub fn path(&self) -> &str {
        self.0.split_once('.').map(|(_, p)| p).unwrap_or_default()
    }

    pub fn is_wildcard(&self) -> bool {
        self.path() == "*"
    }

    /// Whether this attribute, possibly a wildcard, covers `other`.
    pub fn covers(&self, other: &Attribute) -> bool {
        self == other || (self.is_wildcard() && self.category() == other.category())
    }
}

/// The first attribute of `asked` that none of `covering` covers: what a consent or a
/// certification asks beyond a service's declarations, or a service beyond its certification.
pub fn first_uncovered<'a>(
    covering: &[Attribute],
    asked: &'a [Attribute],
) -> Option<&'a Attribute> {
    asked.iter().find(|attribute| !covering.iter().any(|c| c.covers(attribute)))
}

/// A consent's number within the federation, shown as `cs-N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConsentId(pub u64);

impl ConsentId {
    pub fn parse(field: &str, value: &str) -> Result<ConsentId, IndexError> {
        value
            .strip_prefix("cs-")
            .and_then(|n| n.parse::<u64>().ok())
            .map(ConsentId)
            .ok_or_else(|| IndexError::invalid(field, "must be 'cs-' and a number"))
    }
}

impl fmt::Display for ConsentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cs-{}", self.0)
    }
}

/// An identifier a service knows a citizen by, as the index keeps it: the scheme (such as
/// `city-account`, `eidas` or `did`) in clear, and a keyed hash of the value.
///
/// The clear value never reaches the index or the Raft log: nodes hash it at the API edge
/// with the federation's identifier key, which no replica's state holds. So the index can
/// find a citizen by an identifier a service presents, but holds no usable identifier, and
/// never uses a government id as a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identifier {
    scheme: String,
    /// 64 lowercase hex digits.
    digest: String,
}

/// Checks an identifier scheme: lowercase letters, digits and '-', 1 to 32 characters.
pub fn check_scheme(field: &str, scheme: &str) -> Result<(), IndexError> {
    check_token(field, scheme, 32, is_name_char)
}

impl Identifier {
    /// Checks an identifier as a client sends it, before it is hashed.
    pub fn check_clear(field: &str, scheme: &str, value: &str) -> Result<(), IndexError> {
        check_scheme(&format!("{field}.scheme"), scheme)?;
        check_text(&format!("{field}.value"), value)
    }

    pub fn from_digest(field: &str, scheme: &str, digest: &str) -> Result<Identifier, IndexError> {
        check_scheme(&format!("{field}.scheme"), scheme)?;
        let shaped = digest.len() == 64
            && digest.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !shaped {
            return Err(IndexError::invalid(field, "digest must be 64 lowercase hex digits"));
        }
        Ok(Identifier { scheme: scheme.to_owned(), digest: digest.to_owned() })
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn city_ids_need_a_country_prefix() {
        assert!(CityId::parse("city", "nl-eindhoven").is_ok());
        assert_eq!(CityId::parse("city", "nl-eindhoven").unwrap().country(), "NL");
        for bad in ["", "eindhoven", "nl-", "NL-eindhoven", "nld-eindhoven", "nl eindhoven"] {
            let err = CityId::parse("city", bad).unwrap_err();
            assert_eq!(err.field(), "city", "{bad:?} gave {err}");
        }
    }

    #[test]
    fn citizen_ids_are_hex_pseudonyms() {
        let id = CitizenId::from_random([0xab; 16]);
        assert_eq!(CitizenId::parse("citizen_id", id.as_str()).unwrap(), id);
        assert!(CitizenId::parse("citizen_id", "c-123").is_err());
        assert!(CitizenId::parse("citizen_id", "123456789").is_err());
    }

    #[test]
    fn attributes_have_a_category_and_path() {
        let trips = Attribute::parse("a", "mobility.trips").unwrap();
        let all = Attribute::parse("a", "mobility.*").unwrap();
        assert_eq!(trips.category().as_str(), "mobility");
        assert!(all.covers(&trips));
        assert!(!trips.covers(&all));
        for bad in ["mobility", ".trips", "mobility.", "mobility.tr*ps", "Mobility.trips"] {
            assert!(Attribute::parse("a", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn consent_ids_round_trip() {
        assert_eq!(ConsentId::parse("c", "cs-42").unwrap().to_string(), "cs-42");
        assert!(ConsentId::parse("c", "42").is_err());
    }
}
