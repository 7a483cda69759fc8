//! The demo county's configuration, compiled into the binary from `county/`,
//! `schemas/`, `policies/` and `forms/`, so the demo (and the live configuration's
//! embedded source) runs from any directory.

/// The demo's main configuration file inside [`COUNTY_FILES`].
pub const COUNTY_CONFIG: &str = "county/gateway.yaml";

/// The demo county's configuration files, as they are in the repository.
pub const COUNTY_FILES: &[(&str, &str)] = &[
    (
        "county/gateway.yaml",
        include_str!("../../county/gateway.yaml"),
    ),
    (
        "forms/birth-registration.yaml",
        include_str!("../../forms/birth-registration.yaml"),
    ),
    (
        "forms/subsistence-allowance.yaml",
        include_str!("../../forms/subsistence-allowance.yaml"),
    ),
    (
        "forms/rural-housing.yaml",
        include_str!("../../forms/rural-housing.yaml"),
    ),
    (
        "forms/elderly-allowance.yaml",
        include_str!("../../forms/elderly-allowance.yaml"),
    ),
    (
        "county/calendar.yaml",
        include_str!("../../county/calendar.yaml"),
    ),
    (
        "county/purposes.yaml",
        include_str!("../../county/purposes.yaml"),
    ),
    (
        "county/connectors/hukou.yaml",
        include_str!("../../county/connectors/hukou.yaml"),
    ),
    (
        "county/connectors/shebao.yaml",
        include_str!("../../county/connectors/shebao.yaml"),
    ),
    (
        "county/connectors/jisheng.yaml",
        include_str!("../../county/connectors/jisheng.yaml"),
    ),
    (
        "county/connectors/minzheng.yaml",
        include_str!("../../county/connectors/minzheng.yaml"),
    ),
    (
        "schemas/hukou/person.schema.json",
        include_str!("../../schemas/hukou/person.schema.json"),
    ),
    (
        "schemas/hukou/household.schema.json",
        include_str!("../../schemas/hukou/household.schema.json"),
    ),
    (
        "schemas/shebao/insured.schema.json",
        include_str!("../../schemas/shebao/insured.schema.json"),
    ),
    (
        "schemas/jisheng/fertility.schema.json",
        include_str!("../../schemas/jisheng/fertility.schema.json"),
    ),
    (
        "schemas/minzheng/dibao.schema.json",
        include_str!("../../schemas/minzheng/dibao.schema.json"),
    ),
    (
        "schemas/minzheng/dibao-history.schema.json",
        include_str!("../../schemas/minzheng/dibao-history.schema.json"),
    ),
    (
        "schemas/minzheng/marriage.schema.json",
        include_str!("../../schemas/minzheng/marriage.schema.json"),
    ),
    (
        "schemas/minzheng/disability.schema.json",
        include_str!("../../schemas/minzheng/disability.schema.json"),
    ),
    (
        "policies/hukou.yaml",
        include_str!("../../policies/hukou.yaml"),
    ),
    (
        "policies/shebao.yaml",
        include_str!("../../policies/shebao.yaml"),
    ),
    (
        "policies/jisheng.yaml",
        include_str!("../../policies/jisheng.yaml"),
    ),
    (
        "policies/minzheng.yaml",
        include_str!("../../policies/minzheng.yaml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every file under county/, schemas/, policies/ and forms/ is compiled into the demo, so the
    /// demo never runs a county that differs from the repository's.
    #[test]
    fn the_embedded_county_matches_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut on_disk = Vec::new();
        for dir in ["county", "schemas", "policies", "forms"] {
            collect(&root, &root.join(dir), &mut on_disk);
        }
        on_disk.sort();
        let mut embedded: Vec<String> = COUNTY_FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for (path, text) in COUNTY_FILES {
            assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), *text);
        }
    }

    fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("tests") {
                    collect(root, &path, out);
                }
            } else if path.extension().is_some_and(|e| e != "md") {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
}
