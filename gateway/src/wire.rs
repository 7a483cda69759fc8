//! The wire forms of the connectors crate's types that the gateway's answers show (a
//! field's personal-data kind, a subject key, a sharing method and type, a
//! department), as schemas for the API document. The connectors crate knows nothing of
//! OpenAPI; these mirror its serde names, and a test holds each name to the real type.
//! Nothing here is used at run time.

#![allow(dead_code, reason = "schemas: only their shapes are used")]

use utoipa::ToSchema;

/// The kind of personal data a field holds; it picks the field's default mask.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PiiKind {
    IdNumber,
    Name,
    Phone,
    Address,
    Date,
    Money,
    Account,
    Health,
    FreeText,
    Code,
    Count,
    /// Not personal by itself (a township code, a scheme name).
    None,
}

/// What kind of key an operation looks its subject up by.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SubjectKey {
    /// A resident ID number (GB 11643).
    IdNumber,
    /// A household registration number (户号).
    HouseholdNumber,
}

/// How a conditional field is shared.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SharingMethod {
    /// 接口查询: looked up one subject at a time through the gateway.
    Query,
}

/// A field's sharing type (共享类型).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Sharing {
    /// 无条件共享: any authenticated caller with a known purpose.
    Open,
    /// 有条件共享: only under a grant.
    Conditional,
    /// 不予共享: never leaves the department through the gateway.
    Never,
}

/// The department that owns a connector.
#[derive(Debug, ToSchema)]
pub struct DepartmentRef {
    #[schema(example = "county-psb")]
    pub id: String,
    /// The name the county gave the department (absent when it has none).
    #[schema(required = false, example = "县公安局")]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use connectors::definition as real;
    use serde::de::DeserializeOwned;
    use utoipa::PartialSchema;

    /// The enum values a schema lists.
    fn names<T: PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).expect("a schema");
        schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().expect("a name").to_owned())
            .collect()
    }

    /// Every name the schema lists is one the real type reads and writes back.
    fn round_trip<T: DeserializeOwned + serde::Serialize>(names: &[String]) {
        for name in names {
            let value: T = serde_json::from_value(serde_json::json!(name))
                .unwrap_or_else(|e| panic!("`{name}` is not a name of the real type: {e}"));
            assert_eq!(serde_json::to_value(value).expect("writes"), *name);
        }
    }

    #[test]
    fn the_mirrors_name_what_the_connectors_crate_reads() {
        let pii = names::<super::PiiKind>();
        assert_eq!(pii.len(), 12);
        round_trip::<real::PiiKind>(&pii);
        round_trip::<real::SubjectKey>(&names::<super::SubjectKey>());
        round_trip::<real::SharingMethod>(&names::<super::SharingMethod>());
        round_trip::<real::Sharing>(&names::<super::Sharing>());
    }
}
