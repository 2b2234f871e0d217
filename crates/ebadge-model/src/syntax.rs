//! The name syntax of D3.1.3 4.2.3 and 4.2.5, which every layer checks: the field readers
//! (`field`) as much as the checked name types built on it (`names`, which re-exports these).

/// The pattern of every message type and field name (D3.1.3 4.2.3).
pub const NAME_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_]*$";

/// The reserved prefix of extension message types and fields (D3.1.3 4.2.5).
pub const EXTENSION_PREFIX: &str = "ext_";

/// True when `name` matches `[A-Za-z][A-Za-z0-9_]*`.
///
/// ```
/// use ebadge_model::names::is_valid_name;
/// assert!(is_valid_name("HeatPump01"));
/// assert!(!is_valid_name("1st"));
/// assert!(!is_valid_name("heat-pump"));
/// ```
pub fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True when `name` is a valid extension name: `ext_` followed by at least one more name character.
///
/// ```
/// use ebadge_model::names::is_extension_name;
/// assert!(is_extension_name("ext_com_cybergrid_vpp_extended_description"));
/// assert!(!is_extension_name("ext_"));
/// assert!(!is_extension_name("extension"));
/// ```
pub fn is_extension_name(name: &str) -> bool {
    name.len() > EXTENSION_PREFIX.len() && name.starts_with(EXTENSION_PREFIX) && is_valid_name(name)
}
