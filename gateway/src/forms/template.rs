//! Form templates: the files (`forms/*.yaml`) and their compiled, checked form.
//!
//! A template names a purpose, a title and sections of fields. A field's value comes
//! `from` a connector operation's field (`hukou.person_by_id/name`), is `derive`d from
//! one (`age`, `count`, `any`, `sum`), or is left for the clerk (`input: true`). A
//! section is about the form's subject, about a person the subject's record links to
//! (`subject: jisheng.fertility_by_id/spouse.id_number`), or has one row per item of
//! a list (`repeat: hukou.household_by_member/members`, with `lookup_each: true` when
//! each row's person is looked up in turn, for at most `max_rows` rows, 10 by
//! default). In a repeated section `item/name` is a field of the row's item.
//!
//! A form's cost is the most department lookups one fill can make
//! ([`Form::max_lookups`]): each operation of the subject once, each operation of a
//! linked person once per linked section, and each operation of a row's person once per
//! row up to `max_rows`. The caller's rate limits are charged that much before the
//! fill starts.
//!
//! A field may instead be `verify` bound (`verify: hukou.person_by_id/birth_date`, in
//! a section about the form's subject only): the clerk types what the citizen states
//! and the fill verifies it (核验, [`crate::verification`]) — the form shows match or
//! mismatch, never the value. Each verified operation counts one lookup more.
//!
//! Every binding is checked at load against the connector definitions — the
//! connector, the operation (it must take an ID number), the field and its kind — and
//! every problem is reported with its path in the file.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use connectors::definition::{PiiKind, SubjectKey};
use serde::{Deserialize, Serialize};

use crate::active::ActiveConnector;
use crate::active::FieldNode;
use crate::purpose::PurposeCatalog;

/// A template file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FormFile {
    id: String,
    title: String,
    #[serde(default)]
    title_en: Option<String>,
    purpose: String,
    /// Everything the form needs arrives by then, or is reported missing.
    #[serde(default = "default_deadline_ms")]
    deadline_ms: u64,
    /// How many household members are looked up at once.
    #[serde(default = "default_member_concurrency")]
    member_concurrency: usize,
    sections: Vec<SectionFile>,
}

fn default_deadline_ms() -> u64 {
    3_000
}

fn default_member_concurrency() -> usize {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionFile {
    id: String,
    title: String,
    #[serde(default)]
    title_en: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    repeat: Option<String>,
    #[serde(default)]
    lookup_each: bool,
    /// With `lookup_each`: how many rows are looked up at most (the rest are listed
    /// without their own lookups).
    #[serde(default)]
    max_rows: Option<usize>,
    fields: Vec<FieldFile>,
}

/// Rows a section with `lookup_each` looks up when `max_rows` is not given.
const DEFAULT_MAX_ROWS: usize = 10;
/// The largest `max_rows`.
const MAX_ROWS_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    id: String,
    title: String,
    #[serde(default)]
    title_en: Option<String>,
    #[serde(rename = "type")]
    kind: FieldType,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    derive: Option<DeriveFile>,
    #[serde(default)]
    input: bool,
    /// `connector.operation/field`: the clerk types what the citizen states and the
    /// form shows whether the department's record agrees (核验), never the value.
    #[serde(default)]
    verify: Option<String>,
}

/// `derive:` — exactly one of `age`, `count`, `any` or `sum`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeriveFile {
    #[serde(default)]
    age: Option<String>,
    #[serde(default)]
    count: Option<CountFile>,
    #[serde(default)]
    any: Option<AnyFile>,
    #[serde(default)]
    sum: Option<String>,
}

/// `count: LIST`, or `count: { list: LIST, where: { field: value } }` to count only
/// the items with those values.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CountFile {
    All(String),
    Where(AnyFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnyFile {
    list: String,
    #[serde(rename = "where")]
    conditions: BTreeMap<String, String>,
}

/// What kind of value a field holds, for the client that renders the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Date,
    Code,
    IdNumber,
    Integer,
    Number,
    Boolean,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Date => "date",
            FieldType::Code => "code",
            FieldType::IdNumber => "id_number",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
        }
    }
}

/// A compiled form.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub id: String,
    pub title: String,
    pub title_en: Option<String>,
    pub purpose: String,
    pub deadline: Duration,
    pub member_concurrency: usize,
    pub sections: Vec<Section>,
    /// The most department lookups one fill makes: what the caller's limits are
    /// charged before it starts.
    pub max_lookups: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub title_en: Option<String>,
    pub scope: Scope,
    pub fields: Vec<Field>,
}

/// Whom a section is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// The form's subject.
    Subject,
    /// The person whose ID number the subject's record holds at this field.
    Linked(Source),
    /// One row per item of this list in the subject's record; with `lookup_each`,
    /// each row's person (the item's `id_number`) is looked up too, in the first
    /// `max_rows` rows.
    Repeat {
        list: Source,
        lookup_each: bool,
        max_rows: usize,
    },
}

/// A connector operation's field, e.g. `hukou.person_by_id/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    pub connector: String,
    pub operation: String,
    /// Dotted path in the canonical record (`children`, `schemes[].monthly_pension`).
    pub path: String,
}

/// Where a field reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    Lookup(Source),
    /// A field of the repeated section's item, e.g. `name` for `item/name`.
    Item(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub id: String,
    pub title: String,
    pub title_en: Option<String>,
    pub kind: FieldType,
    pub value: FieldValue,
}

impl Field {
    /// The connector operation this field reads for the section's person, if any
    /// (not an item of a row, not an input).
    pub fn lookup(&self) -> Option<&Source> {
        let reference = match &self.value {
            FieldValue::From(r) => r,
            FieldValue::Derive(Derive::Age(r) | Derive::Sum(r)) => r,
            FieldValue::Derive(Derive::Any { list, .. } | Derive::Count { list, .. }) => list,
            FieldValue::Input | FieldValue::Verify(_) => return None,
        };
        match reference {
            SourceRef::Lookup(source) => Some(source),
            SourceRef::Item(_) => None,
        }
    }

    /// The connector operation's field this field states a value of, to be verified
    /// for the form's subject.
    pub fn verify(&self) -> Option<&Source> {
        match &self.value {
            FieldValue::Verify(source) => Some(source),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    From(SourceRef),
    Derive(Derive),
    /// Filled in by the clerk.
    Input,
    /// Stated by the citizen, typed by the clerk, and verified against this field of
    /// the subject's record: the form shows match or mismatch, never the value.
    Verify(Source),
}

/// A value computed from released fields only (never from what was withheld).
#[derive(Debug, Clone, PartialEq)]
pub enum Derive {
    /// Whole years since a date.
    Age(SourceRef),
    /// The number of items of a list (with these field values, if any are named).
    Count {
        list: SourceRef,
        conditions: Vec<(String, String)>,
    },
    /// Whether some item of a list has these field values.
    Any {
        list: SourceRef,
        conditions: Vec<(String, String)>,
    },
    /// The sum of a numeric field over a list's items.
    Sum(SourceRef),
}

impl Derive {
    pub fn name(&self) -> &'static str {
        match self {
            Derive::Age(_) => "age",
            Derive::Count { .. } => "count",
            Derive::Any { .. } => "any",
            Derive::Sum(_) => "sum",
        }
    }
}

/// Every form, by id.
#[derive(Debug, Clone, Default)]
pub struct FormSet {
    forms: BTreeMap<String, Arc<Form>>,
}

impl FormSet {
    pub fn get(&self, id: &str) -> Option<&Arc<Form>> {
        self.forms.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Form>> {
        self.forms.values()
    }

    pub fn len(&self) -> usize {
        self.forms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    pub(crate) fn insert(&mut self, form: Form) -> bool {
        if self.forms.contains_key(&form.id) {
            return false;
        }
        self.forms.insert(form.id.clone(), Arc::new(form));
        true
    }
}

/// What a path in a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Leaf(PiiKind),
    Object,
    List,
}

/// Checks a template against the loaded connectors and purposes; `None` with the
/// problems (path in the file, message) when it does not hold.
pub(crate) fn compile(
    file: FormFile,
    connectors: &BTreeMap<String, ActiveConnector>,
    broken: &BTreeSet<String>,
    purposes: &PurposeCatalog,
    problems: &mut Vec<(String, String)>,
) -> Option<Form> {
    let before = problems.len();
    let mut problem = |at: String, message: String| problems.push((at, message));
    if !is_identifier(&file.id) {
        problem(
            "id".into(),
            "must be 1–64 characters of a-z, 0-9, '-' or '_', starting with a letter".into(),
        );
    }
    if purposes.get(&file.purpose).is_none() {
        problem(
            "purpose".into(),
            format!("`{}` is not in the purpose catalog", file.purpose),
        );
    }
    if !(100..=30_000).contains(&file.deadline_ms) {
        problem("deadline_ms".into(), "must be between 100 and 30000".into());
    }
    if !(1..=32).contains(&file.member_concurrency) {
        problem(
            "member_concurrency".into(),
            "must be between 1 and 32".into(),
        );
    }
    if file.sections.is_empty() {
        problem("sections".into(), "list at least one section".into());
    }
    let checker = Checker {
        connectors,
        broken,
        skipped: Cell::new(false),
    };
    let mut section_ids = BTreeSet::new();
    let mut sections = Vec::new();
    for (i, s) in file.sections.into_iter().enumerate() {
        let at = format!("sections[{i}]");
        if !section_ids.insert(s.id.clone()) {
            problem(format!("{at}.id"), format!("a second section `{}`", s.id));
        }
        let scope = match (&s.subject, &s.repeat) {
            (Some(_), Some(_)) => {
                problem(
                    at.clone(),
                    "a section has either `subject` or `repeat`, not both".into(),
                );
                None
            }
            (Some(link), None) => checker
                .source(link, &format!("{at}.subject"), &mut problem)
                .and_then(|source| match checker.node(&source) {
                    Some(Node::Leaf(PiiKind::IdNumber)) => Some(Scope::Linked(source)),
                    _ => {
                        problem(
                            format!("{at}.subject"),
                            "must name an ID-number field".into(),
                        );
                        None
                    }
                }),
            (None, Some(list)) => checker
                .source(list, &format!("{at}.repeat"), &mut problem)
                .and_then(|source| {
                    if checker.node(&source) != Some(Node::List) {
                        problem(format!("{at}.repeat"), "must name a list field".into());
                        return None;
                    }
                    if s.lookup_each {
                        let id = Source {
                            path: format!("{}[].id_number", source.path),
                            ..source.clone()
                        };
                        if checker.node(&id) != Some(Node::Leaf(PiiKind::IdNumber)) {
                            problem(
                                format!("{at}.lookup_each"),
                                "needs the list's items to have an `id_number` field".into(),
                            );
                            return None;
                        }
                    }
                    Some(Scope::Repeat {
                        list: source,
                        lookup_each: s.lookup_each,
                        max_rows: s.max_rows.unwrap_or(DEFAULT_MAX_ROWS),
                    })
                }),
            (None, None) => Some(Scope::Subject),
        };
        if s.lookup_each && s.repeat.is_none() {
            problem(
                format!("{at}.lookup_each"),
                "only a repeated section looks each row up".into(),
            );
        }
        if let Some(max_rows) = s.max_rows {
            if !s.lookup_each {
                problem(
                    format!("{at}.max_rows"),
                    "only a section that looks each row up (`lookup_each: true`) has `max_rows`"
                        .into(),
                );
            } else if !(1..=MAX_ROWS_LIMIT).contains(&max_rows) {
                problem(
                    format!("{at}.max_rows"),
                    format!("must be between 1 and {MAX_ROWS_LIMIT}"),
                );
            }
        }
        let Some(scope) = scope else {
            // Its fields cannot be checked without knowing whom they are about.
            continue;
        };
        let mut field_ids = BTreeSet::new();
        let mut fields = Vec::new();
        for (j, f) in s.fields.into_iter().enumerate() {
            let at = format!("{at}.fields[{j}]");
            if !field_ids.insert(f.id.clone()) {
                problem(format!("{at}.id"), format!("a second field `{}`", f.id));
            }
            let repeat = match &scope {
                Scope::Repeat { list, .. } => Some(list),
                _ => None,
            };
            // A person reached through a link is known to the caller only as the
            // link shows them (often masked); their own record must not show more.
            let linked = matches!(
                scope,
                Scope::Linked(_)
                    | Scope::Repeat {
                        lookup_each: true,
                        ..
                    }
            );
            let value = match (f.from, f.derive, f.input, f.verify) {
                (Some(from), None, false, None) => checker
                    .reference(&from, repeat, &format!("{at}.from"), &mut problem)
                    .and_then(|(r, node)| match node {
                        Node::Leaf(PiiKind::IdNumber)
                            if linked && matches!(r, SourceRef::Lookup(_)) =>
                        {
                            problem(
                                format!("{at}.from"),
                                "a linked person's ID number is shown only as the link shows it \
                                 (the section's `subject`, or `item/id_number`), never from their own record"
                                    .into(),
                            );
                            None
                        }
                        Node::Leaf(_) => Some(FieldValue::From(r)),
                        _ => {
                            problem(format!("{at}.from"), "must name a single field".into());
                            None
                        }
                    }),
                (None, Some(derive), false, None) => {
                    checker.derive(derive, f.kind, repeat, &format!("{at}.derive"), &mut problem)
                }
                (None, None, true, None) => Some(FieldValue::Input),
                (None, None, false, Some(verify)) => {
                    checker.verify(&verify, &scope, &format!("{at}.verify"), &mut problem)
                }
                _ => {
                    problem(
                        at.clone(),
                        "a field has exactly one of `from`, `derive`, `input: true` or `verify`"
                            .into(),
                    );
                    None
                }
            };
            if let Some(value) = value {
                fields.push(Field {
                    id: f.id,
                    title: f.title,
                    title_en: f.title_en,
                    kind: f.kind,
                    value,
                });
            }
        }
        sections.push(Section {
            id: s.id,
            title: s.title,
            title_en: s.title_en,
            scope,
            fields,
        });
    }
    if problems.len() > before || checker.skipped.get() {
        return None;
    }
    let max_lookups = max_lookups(&sections);
    Some(Form {
        id: file.id,
        title: file.title,
        title_en: file.title_en,
        purpose: file.purpose,
        deadline: Duration::from_millis(file.deadline_ms),
        member_concurrency: file.member_concurrency,
        sections,
        max_lookups,
    })
}

/// The most lookups one fill of these sections makes (see the module docs): a fill
/// makes each (connector, operation, person) lookup once.
fn max_lookups(sections: &[Section]) -> u32 {
    fn source(s: &Source) -> (&str, &str) {
        (s.connector.as_str(), s.operation.as_str())
    }
    let mut subject: BTreeSet<(&str, &str)> = BTreeSet::new();
    // One verification per operation of the subject, besides any lookup of it.
    let verified: BTreeSet<(&str, &str)> = sections
        .iter()
        .flat_map(|s| s.fields.iter().filter_map(Field::verify))
        .map(source)
        .collect();
    let mut others: usize = verified.len();
    for section in sections {
        let own: BTreeSet<(&str, &str)> = section
            .fields
            .iter()
            .filter_map(Field::lookup)
            .map(source)
            .collect();
        match &section.scope {
            Scope::Subject => subject.extend(own),
            Scope::Linked(link) => {
                subject.insert(source(link));
                others = others.saturating_add(own.len());
            }
            Scope::Repeat {
                list,
                lookup_each,
                max_rows,
            } => {
                subject.insert(source(list));
                if *lookup_each {
                    others = others.saturating_add(own.len().saturating_mul(*max_rows));
                } else {
                    subject.extend(own);
                }
            }
        }
    }
    u32::try_from(subject.len().saturating_add(others)).unwrap_or(u32::MAX)
}

struct Checker<'a> {
    connectors: &'a BTreeMap<String, ActiveConnector>,
    /// Connectors whose own files have problems (already reported): bindings to
    /// them are not checked, and the form is not loaded.
    broken: &'a BTreeSet<String>,
    skipped: Cell<bool>,
}

impl Checker<'_> {
    /// `verify: connector.operation/field`: a single field, not inside a list, of an
    /// operation looked up by ID number, in a section about the form's subject.
    fn verify(
        &self,
        text: &str,
        scope: &Scope,
        at: &str,
        problem: &mut impl FnMut(String, String),
    ) -> Option<FieldValue> {
        if *scope != Scope::Subject {
            problem(
                at.to_owned(),
                "only a section about the form's subject (no `subject` or `repeat`) has \
                 fields to verify"
                    .into(),
            );
            return None;
        }
        let source = self.source(text, at, problem)?;
        if source.path.contains("[]") {
            problem(
                at.to_owned(),
                format!(
                    "`{}` is inside a list; a verification confirms one value of the person",
                    source.path
                ),
            );
            return None;
        }
        match self.node(&source) {
            Some(Node::Leaf(_)) => Some(FieldValue::Verify(source)),
            _ => {
                problem(at.to_owned(), "must name a single field".into());
                None
            }
        }
    }

    /// Parses `connector.operation/path` and checks the connector and operation.
    fn source(
        &self,
        text: &str,
        at: &str,
        problem: &mut impl FnMut(String, String),
    ) -> Option<Source> {
        let parsed = text.split_once('/').and_then(|(head, path)| {
            let (connector, operation) = head.split_once('.')?;
            Some(Source {
                connector: connector.to_owned(),
                operation: operation.to_owned(),
                path: path.to_owned(),
            })
        });
        let Some(source) = parsed.filter(|s| !s.path.is_empty()) else {
            problem(
                at.to_owned(),
                "expected `connector.operation/field` or, in a repeated section, `item/field`"
                    .into(),
            );
            return None;
        };
        if self.broken.contains(&source.connector) {
            self.skipped.set(true);
            return None;
        }
        let Some(connector) = self.connectors.get(&source.connector) else {
            problem(
                at.to_owned(),
                format!("no connector `{}`", source.connector),
            );
            return None;
        };
        let Some(op) = connector.operations.get(&source.operation) else {
            problem(
                at.to_owned(),
                format!(
                    "connector `{}` has no operation `{}`",
                    source.connector, source.operation
                ),
            );
            return None;
        };
        if op.subject != SubjectKey::IdNumber {
            problem(
                at.to_owned(),
                format!(
                    "operation `{}` is looked up by {}; forms look people up by ID number",
                    source.operation,
                    op.subject.as_str()
                ),
            );
            return None;
        }
        if self.node(&source).is_none() {
            problem(
                at.to_owned(),
                format!(
                    "operation `{}.{}` has no field `{}`",
                    source.connector, source.operation, source.path
                ),
            );
            return None;
        }
        Some(source)
    }

    /// What the path of a (checked) source is in its operation's record.
    fn node(&self, source: &Source) -> Option<Node> {
        let op = self
            .connectors
            .get(&source.connector)?
            .operations
            .get(&source.operation)?;
        let mut tree = &op.fields;
        let mut segments = source.path.split('.').peekable();
        while let Some(segment) = segments.next() {
            let (name, item) = match segment.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (segment, false),
            };
            let node = tree.get(name)?;
            let last = segments.peek().is_none();
            match node {
                FieldNode::Leaf(_) if last && !item => {
                    let pii = op.leaves.iter().find(|l| l.path == source.path)?.pii;
                    return Some(Node::Leaf(pii));
                }
                FieldNode::Object(children) if !item => {
                    if last {
                        return Some(Node::Object);
                    }
                    tree = children;
                }
                FieldNode::List(children) => {
                    if last && !item {
                        return Some(Node::List);
                    }
                    if !item || last {
                        return None;
                    }
                    tree = children;
                }
                _ => return None,
            }
        }
        None
    }

    /// A field reference: `connector.operation/path`, or `item/path` inside a
    /// repeated section over `repeat`.
    fn reference(
        &self,
        text: &str,
        repeat: Option<&Source>,
        at: &str,
        problem: &mut impl FnMut(String, String),
    ) -> Option<(SourceRef, Node)> {
        if let Some(path) = text.strip_prefix("item/") {
            let Some(list) = repeat else {
                problem(
                    at.to_owned(),
                    "`item/…` is only meaningful in a repeated section".into(),
                );
                return None;
            };
            let full = Source {
                path: format!("{}[].{path}", list.path),
                ..list.clone()
            };
            return match self.node(&full) {
                Some(node) => Some((SourceRef::Item(path.to_owned()), node)),
                None => {
                    problem(
                        at.to_owned(),
                        format!("the items of `{}` have no field `{path}`", list.path),
                    );
                    None
                }
            };
        }
        let source = self.source(text, at, problem)?;
        let node = self.node(&source)?;
        Some((SourceRef::Lookup(source), node))
    }

    fn derive(
        &self,
        derive: DeriveFile,
        kind: FieldType,
        repeat: Option<&Source>,
        at: &str,
        problem: &mut impl FnMut(String, String),
    ) -> Option<FieldValue> {
        let (expected, derived) = match derive {
            DeriveFile {
                age: Some(text),
                count: None,
                any: None,
                sum: None,
            } => {
                let (r, node) = self.reference(&text, repeat, &format!("{at}.age"), problem)?;
                if node != Node::Leaf(PiiKind::Date) {
                    problem(format!("{at}.age"), "must name a date field".into());
                    return None;
                }
                (FieldType::Integer, Derive::Age(r))
            }
            DeriveFile {
                age: None,
                count: Some(count),
                any: None,
                sum: None,
            } => {
                let (text, conditions, list_at) = match count {
                    CountFile::All(text) => (text, BTreeMap::new(), format!("{at}.count")),
                    CountFile::Where(AnyFile { list, conditions }) => {
                        (list, conditions, format!("{at}.count.list"))
                    }
                };
                let (r, node) = self.reference(&text, repeat, &list_at, problem)?;
                if node != Node::List {
                    problem(list_at, "must name a list field".into());
                    return None;
                }
                for field in conditions.keys() {
                    self.reference(
                        &format!("{text}[].{field}"),
                        repeat,
                        &format!("{at}.count.where.{field}"),
                        problem,
                    )?;
                }
                (
                    FieldType::Integer,
                    Derive::Count {
                        list: r,
                        conditions: conditions.into_iter().collect(),
                    },
                )
            }
            DeriveFile {
                age: None,
                count: None,
                any: Some(AnyFile { list, conditions }),
                sum: None,
            } => {
                let (r, node) =
                    self.reference(&list, repeat, &format!("{at}.any.list"), problem)?;
                if node != Node::List {
                    problem(format!("{at}.any.list"), "must name a list field".into());
                    return None;
                }
                if conditions.is_empty() {
                    problem(
                        format!("{at}.any.where"),
                        "name at least one field and value".into(),
                    );
                    return None;
                }
                for field in conditions.keys() {
                    self.reference(
                        &format!("{list}[].{field}"),
                        repeat,
                        &format!("{at}.any.where.{field}"),
                        problem,
                    )?;
                }
                (
                    FieldType::Boolean,
                    Derive::Any {
                        list: r,
                        conditions: conditions.into_iter().collect(),
                    },
                )
            }
            DeriveFile {
                age: None,
                count: None,
                any: None,
                sum: Some(text),
            } => {
                let (r, node) = self.reference(&text, repeat, &format!("{at}.sum"), problem)?;
                let in_list = match &r {
                    SourceRef::Lookup(s) => s.path.contains("[]."),
                    SourceRef::Item(path) => path.contains("[]."),
                };
                if !matches!(node, Node::Leaf(PiiKind::Money | PiiKind::Count)) || !in_list {
                    problem(
                        format!("{at}.sum"),
                        "must name a number field of a list's items (`list[].field`)".into(),
                    );
                    return None;
                }
                (FieldType::Number, Derive::Sum(r))
            }
            _ => {
                problem(
                    at.to_owned(),
                    "give exactly one of `age`, `count`, `any` or `sum`".into(),
                );
                return None;
            }
        };
        if kind != expected {
            problem(
                at.to_owned(),
                format!(
                    "`{}` gives a value of type {}",
                    derived.name(),
                    expected.as_str()
                ),
            );
            return None;
        }
        Some(FieldValue::Derive(derived))
    }
}

fn is_identifier(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{EmbeddedSource, LoadOptions, load};
    use crate::county::{COUNTY_CONFIG, COUNTY_FILES};

    /// The demo county with `forms/rural-housing.yaml` replaced by `form`: the
    /// problems its loading reports for that file, as (path, message).
    fn problems_of(form: &str) -> Vec<(String, String)> {
        let files = COUNTY_FILES.iter().map(|(path, text)| {
            let text = if *path == "forms/rural-housing.yaml" {
                form
            } else {
                text
            };
            (*path, text.to_owned())
        });
        match load(
            &EmbeddedSource::new(files),
            Path::new(COUNTY_CONFIG),
            &LoadOptions::default(),
        ) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .filter(|p| p.file.ends_with("rural-housing.yaml"))
                .map(|p| (p.path, p.message))
                .collect(),
        }
    }

    #[test]
    fn every_bad_binding_is_named_with_its_path() {
        let problems = problems_of(
            r#"
id: rural-housing
title: 农民建房申请
purpose: no_such_purpose
sections:
  - id: a
    title: A
    fields:
      - { id: x, title: X, type: text, from: nosuch.op/name }
      - { id: y, title: Y, type: text, from: hukou.person_by_id/nosuch }
      - { id: z, title: Z, type: text, from: hukou.household/address }
      - { id: w, title: W, type: text, from: item/name }
      - { id: v, title: V, type: text, derive: { age: hukou.person_by_id/name } }
      - { id: u, title: U, type: text, derive: { count: hukou.household_by_member/members } }
      - { id: t, title: T, type: text, from: hukou.person_by_id/name, input: true }
  - id: spouse
    title: S
    subject: jisheng.fertility_by_id/spouse.id_number
    fields:
      - { id: id, title: ID, type: id_number, from: hukou.person_by_id/id_number }
"#,
        );
        let at = |path: &str| {
            problems
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, m)| m.as_str())
                .unwrap_or_else(|| panic!("no problem at {path}: {problems:?}"))
        };
        assert!(at("purpose").contains("no_such_purpose"));
        assert!(at("sections[0].fields[0].from").contains("no connector `nosuch`"));
        assert!(at("sections[0].fields[1].from").contains("no field `nosuch`"));
        assert!(at("sections[0].fields[2].from").contains("forms look people up by ID number"));
        assert!(at("sections[0].fields[3].from").contains("repeated section"));
        assert!(at("sections[0].fields[4].derive.age").contains("date field"));
        assert!(at("sections[0].fields[5].derive").contains("integer"));
        assert!(at("sections[0].fields[6]").contains("exactly one of"));
        assert!(at("sections[1].fields[0].from").contains("linked person's ID number"));
        assert_eq!(problems.len(), 9, "{problems:?}");
    }

    /// The demo county with its files edited by `edit`, loaded.
    fn load_with(
        edit: impl Fn(&str, &str) -> String,
    ) -> Result<crate::config::ActiveConfig, Vec<crate::config::ConfigProblem>> {
        let files = COUNTY_FILES
            .iter()
            .map(|(path, text)| (*path, edit(path, text)));
        load(
            &EmbeddedSource::new(files),
            Path::new(COUNTY_CONFIG),
            &LoadOptions::default(),
        )
    }

    fn three_rows(path: &str, text: &str) -> String {
        if path == "forms/subsistence-allowance.yaml" {
            text.replace(
                "lookup_each: true\n",
                "lookup_each: true\n    max_rows: 3\n",
            )
        } else {
            text.to_owned()
        }
    }

    #[test]
    fn a_forms_cost_is_every_lookup_one_fill_can_make() {
        let config = load_with(|_, text| text.to_owned()).unwrap();
        let cost = |id: &str| config.forms.get(id).unwrap().max_lookups;
        // hukou, jisheng and shebao for the applicant; hukou for the spouse (the
        // children are items of the applicant's births record, not lookups).
        assert_eq!(cost("birth-registration"), 4);
        // The household, and shebao and minzheng for each of up to 10 members.
        assert_eq!(cost("subsistence-allowance"), 21);
        // The household only: its rows are items of the household's list.
        assert_eq!(cost("rural-housing"), 1);
        // hukou and shebao read for the applicant, and one verification of what
        // the applicant states (three fields of one operation).
        assert_eq!(cost("elderly-allowance"), 3);

        let config = load_with(three_rows).unwrap();
        let form = config.forms.get("subsistence-allowance").unwrap();
        assert_eq!(form.max_lookups, 7);
        assert!(matches!(
            form.sections[1].scope,
            super::Scope::Repeat { max_rows: 3, .. }
        ));
    }

    #[test]
    fn max_rows_is_checked_and_every_form_must_fit_the_callers_limits() {
        let problems = problems_of(
            r#"
id: rural-housing
title: 农民建房申请
purpose: rural_housing
sections:
  - id: members
    title: M
    repeat: hukou.household_by_member/members
    max_rows: 5
    fields:
      - { id: name, title: N, type: text, from: item/name }
"#,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "sections[0].max_rows");
        assert!(problems[0].1.contains("lookup_each"), "{problems:?}");
        let problems = problems_of(
            r#"
id: rural-housing
title: 农民建房申请
purpose: rural_housing
sections:
  - id: members
    title: M
    repeat: hukou.household_by_member/members
    lookup_each: true
    max_rows: 0
    fields:
      - { id: name, title: N, type: text, from: item/name }
"#,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "sections[0].max_rows");

        // A burst of 10 cannot take a fill of up to 21 lookups at once.
        let small = |text: &str| {
            text.replace(
                "per_user: { per_minute: 120, burst: 30 }",
                "per_user: { per_minute: 120, burst: 10 }",
            )
        };
        let problems = load_with(|_, text| small(text)).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].file.ends_with("gateway.yaml"));
        assert_eq!(problems[0].path, "rate_limits.per_user.burst");
        assert!(
            problems[0].message.contains("subsistence-allowance")
                && problems[0].message.contains("21 department lookups"),
            "{problems:?}"
        );
        // With at most 3 members looked up, it fits.
        assert!(load_with(|path, text| small(&three_rows(path, text))).is_ok());
    }

    #[test]
    fn verify_bound_fields_are_checked_like_from_and_only_about_the_subject() {
        let problems = problems_of(
            r#"
id: rural-housing
title: 农民建房申请
purpose: rural_housing
sections:
  - id: a
    title: A
    fields:
      - { id: ok, title: OK, type: date, verify: hukou.person_by_id/birth_date }
      - { id: x, title: X, type: text, verify: hukou.person_by_id/nosuch }
      - { id: y, title: Y, type: text, verify: "hukou.household_by_member/members[].name" }
      - { id: z, title: Z, type: text, verify: hukou.household/address }
      - { id: w, title: W, type: text, verify: hukou.person_by_id/name, input: true }
      - { id: v, title: V, type: text, verify: nosuch.op/name }
  - id: members
    title: M
    repeat: hukou.household_by_member/members
    fields:
      - { id: name, title: N, type: text, verify: hukou.person_by_id/name }
  - id: spouse
    title: S
    subject: jisheng.fertility_by_id/spouse.id_number
    fields:
      - { id: name, title: N, type: text, verify: hukou.person_by_id/name }
"#,
        );
        let at = |path: &str| {
            problems
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, m)| m.as_str())
                .unwrap_or_else(|| panic!("no problem at {path}: {problems:?}"))
        };
        assert!(at("sections[0].fields[1].verify").contains("no field `nosuch`"));
        assert!(at("sections[0].fields[2].verify").contains("inside a list"));
        assert!(at("sections[0].fields[3].verify").contains("forms look people up by ID number"));
        assert!(at("sections[0].fields[4]").contains("exactly one of"));
        assert!(at("sections[0].fields[5].verify").contains("no connector `nosuch`"));
        assert!(at("sections[1].fields[0].verify").contains("form's subject"));
        assert!(at("sections[2].fields[0].verify").contains("form's subject"));
        assert_eq!(problems.len(), 7, "{problems:?}");
    }

    #[test]
    fn the_elderly_allowance_form_verifies_and_never_reads_what_it_verifies() {
        let config = load_with(|_, text| text.to_owned()).unwrap();
        let form = config.forms.get("elderly-allowance").unwrap();
        let verified: Vec<(&str, &str)> = form
            .sections
            .iter()
            .flat_map(|s| &s.fields)
            .filter_map(|f| f.verify().map(|s| (f.id.as_str(), s.path.as_str())))
            .collect();
        assert_eq!(
            verified,
            [
                ("name", "name"),
                ("birth_date", "birth_date"),
                ("address", "address")
            ]
        );
        let read: Vec<&str> = form
            .sections
            .iter()
            .flat_map(|s| &s.fields)
            .filter_map(|f| f.lookup())
            .filter(|s| s.connector == "hukou")
            .map(|s| s.path.as_str())
            .collect();
        assert_eq!(read, ["id_number"]);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let problems = problems_of(
            "id: rural-housing\ntitle: T\npurpose: rural_housing\nsections: []\ncolour: red\n",
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("colour"), "{problems:?}");
    }
}
