//! Auto-filled forms (自助填表): templates that name, field by field, which
//! department's operation fills them ([`template`], checked when the configuration
//! loads). Who may fill which, and filling one for a person from every department it
//! needs at once, is [`crate::fill`]; the HTTP routes are in
//! [`crate::http::forms`].

pub mod template;

pub use template::{Derive, Field, FieldType, FieldValue, Form, FormSet, Scope, Section, Source};
pub(crate) use template::{FormFile, compile};
