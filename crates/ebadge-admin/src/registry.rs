//! The registry: who is on the bus, which HEHs belong to which operator, who talks to whom, and
//! which groups exist. A TOML file; errors point at the line.
//!
//! ```
//! use ebadge_admin::registry::Registry;
//! let registry = Registry::parse(r#"
//! [[entity]]
//! name = "ts"
//! [[entity]]
//! name = "vpp"
//! [[heh]]
//! name = "heh-a"
//! operator = "ts"
//! [[link]]
//! between = ["vpp", "ts"]
//! [[group]]
//! name = "vpps"
//! sender = "ts"
//! members = ["vpp"]
//! "#)?;
//! assert_eq!(registry.entities().count(), 3);
//! assert_eq!(registry.links().len(), 2); // vpp-ts and heh-a-ts
//! # Ok::<(), ebadge_admin::registry::RegistryError>(())
//! ```

use ebadge_bus::EntityName;
use ebadge_bus::conventions::{DEFAULT_MAX_LENGTH, ENTITY_NAME_RULE, MESSAGE_TTL_MS};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use toml::Spanned;

/// A registry that cannot be used, with the line.
#[derive(Debug, thiserror::Error)]
#[error("{}line {line}: {message}", file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct RegistryError {
    /// The file, when read from one.
    pub file: Option<String>,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The queue type of inboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// On a cluster of more than one node: quorum queues for every entity but HEHs, classic
    /// queues for HEHs (see [`crate::state::inbox_queue_type`]); classic queues on a single
    /// node. What provisioning finds on the live broker decides.
    Auto,
    /// Classic queues: live on one node.
    Classic,
    /// Quorum queues: replicated, for clusters.
    Quorum,
}

/// `[options]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Message TTL of every queue (D3.2.3 6.2.4: 15 minutes).
    #[serde(default = "default_ttl")]
    pub message_ttl_ms: u64,
    /// Most messages one queue may hold; past it publishes are refused (the sender keeps them).
    #[serde(default = "default_max_length")]
    pub max_length: u64,
    /// Queue type of the inboxes.
    #[serde(default = "default_queue_type")]
    pub queue_type: QueueType,
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "classic" => Ok(Self::Classic),
            "quorum" => Ok(Self::Quorum),
            other => Err(format!(
                "unknown queue type {other:?}: auto, classic or quorum"
            )),
        }
    }
}

fn default_ttl() -> u64 {
    MESSAGE_TTL_MS
}
fn default_max_length() -> u64 {
    DEFAULT_MAX_LENGTH
}
fn default_queue_type() -> QueueType {
    QueueType::Auto
}

impl Default for Options {
    fn default() -> Self {
        Self {
            message_ttl_ms: MESSAGE_TTL_MS,
            max_length: DEFAULT_MAX_LENGTH,
            queue_type: QueueType::Auto,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    entity: Vec<EntityEntry>,
    #[serde(default)]
    heh: Vec<HehEntry>,
    #[serde(default)]
    link: Vec<LinkEntry>,
    #[serde(default)]
    group: Vec<GroupEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityEntry {
    name: Spanned<String>,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HehEntry {
    name: Spanned<String>,
    operator: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    between: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    name: Spanned<String>,
    sender: Spanned<String>,
    members: Vec<Spanned<String>>,
}

/// A group: one sender, many members, one exchange `<sender>-to-<group>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's name (the receiver part of its exchange name).
    pub name: EntityName,
    /// The only entity that may publish to it.
    pub sender: EntityName,
    /// Who receives it.
    pub members: BTreeSet<EntityName>,
}

/// A checked registry.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The options.
    pub options: Options,
    /// Every entity (HEHs included), with its role (`heh` for HEHs).
    roles: BTreeMap<EntityName, String>,
    /// Each HEH's operator.
    operators: BTreeMap<EntityName, EntityName>,
    /// Unordered links, each stored as (smaller, larger).
    links: BTreeSet<(EntityName, EntityName)>,
    groups: Vec<Group>,
}

impl Registry {
    /// Reads and checks a registry file.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError {
            file: Some(path.display().to_string()),
            line: 0,
            message: format!("cannot read the registry: {e}"),
        })?;
        Self::parse(&text).map_err(|mut e| {
            e.file = Some(path.display().to_string());
            e
        })
    }

    /// Parses and checks registry text.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let err = |offset: usize, message: String| RegistryError {
            file: None,
            line: line_of(offset),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            err(offset, e.message().to_owned())
        })?;
        let name = |s: &Spanned<String>| {
            EntityName::new(s.get_ref()).map_err(|_| {
                err(
                    s.span().start,
                    format!("{:?} is not a valid name: {ENTITY_NAME_RULE}", s.get_ref()),
                )
            })
        };
        let mut roles = BTreeMap::new();
        let mut operators = BTreeMap::new();
        let mut first_seen: BTreeMap<EntityName, usize> = BTreeMap::new();
        let mut add = |n: EntityName, role: String, at: usize| {
            if let Some(prev) = first_seen.get(&n) {
                return Err(err(
                    at,
                    format!(
                        "\"{n}\" is defined twice (first on line {})",
                        line_of(*prev)
                    ),
                ));
            }
            first_seen.insert(n.clone(), at);
            roles.insert(n, role);
            Ok(())
        };
        for e in &file.entity {
            add(
                name(&e.name)?,
                e.role.clone().unwrap_or_else(|| "entity".into()),
                e.name.span().start,
            )?;
        }
        for h in &file.heh {
            add(name(&h.name)?, "heh".into(), h.name.span().start)?;
        }
        let known = |s: &Spanned<String>, what: &str| {
            let n = name(s)?;
            if roles.contains_key(&n) {
                Ok(n)
            } else {
                Err(err(
                    s.span().start,
                    format!(
                        "{what} {:?} is not an entity of this registry (add an [[entity]] with this name)",
                        s.get_ref()
                    ),
                ))
            }
        };
        for h in &file.heh {
            let op = known(&h.operator, "operator")?;
            if roles.get(&op).is_some_and(|r| r == "heh") {
                return Err(err(
                    h.operator.span().start,
                    format!("operator \"{op}\" is an HEH"),
                ));
            }
            operators.insert(name(&h.name)?, op);
        }
        let mut links = BTreeSet::new();
        for (heh, op) in &operators {
            links.insert(ordered(heh.clone(), op.clone()));
        }
        for l in &file.link {
            let ends = l.between.get_ref();
            if ends.len() != 2 {
                return Err(err(
                    l.between.span().start,
                    "a link is between exactly two entities: between = [\"a\", \"b\"]".into(),
                ));
            }
            let (a, b) = (known(&ends[0], "link end")?, known(&ends[1], "link end")?);
            if a == b {
                return Err(err(
                    l.between.span().start,
                    format!("a link from \"{a}\" to itself"),
                ));
            }
            links.insert(ordered(a, b));
        }
        let mut groups = Vec::new();
        for g in &file.group {
            let group_name = name(&g.name)?;
            if roles.contains_key(&group_name) {
                return Err(err(
                    g.name.span().start,
                    format!(
                        "group \"{group_name}\" has the name of an entity; exchange {group_name}… would be ambiguous"
                    ),
                ));
            }
            if groups.iter().any(|x: &Group| x.name == group_name) {
                return Err(err(
                    g.name.span().start,
                    format!("group \"{group_name}\" is defined twice"),
                ));
            }
            let sender = known(&g.sender, "group sender")?;
            let mut members = BTreeSet::new();
            for m in &g.members {
                members.insert(known(m, "group member")?);
            }
            groups.push(Group {
                name: group_name,
                sender,
                members,
            });
        }
        // Overlapping private namespaces would let one entity configure another's queues.
        let mut all: Vec<(&EntityName, usize)> =
            first_seen.iter().map(|(n, at)| (n, *at)).collect();
        let group_spans: Vec<(EntityName, usize)> = file
            .group
            .iter()
            .zip(&groups)
            .map(|(g, x)| (x.name.clone(), g.name.span().start))
            .collect();
        all.extend(group_spans.iter().map(|(n, at)| (n, *at)));
        all.sort();
        for (i, (a, _)) in all.iter().enumerate() {
            for (b, at_b) in &all[i + 1..] {
                if !b.as_str().starts_with(a.as_str()) {
                    break;
                }
                if a.overlaps(b) {
                    return Err(err(
                        *at_b,
                        format!(
                            "\"{b}\" starts with \"{a}\" followed by '-': their exchanges and private namespaces (private-{a}-…) would overlap; rename one"
                        ),
                    ));
                }
            }
        }
        Ok(Self {
            options: file.options.unwrap_or_default(),
            roles,
            operators,
            links,
            groups,
        })
    }

    /// Every entity, HEHs included, in name order.
    pub fn entities(&self) -> impl Iterator<Item = &EntityName> {
        self.roles.keys()
    }

    /// The role given in the registry (`heh` for HEHs, `entity` when none was given).
    pub fn role(&self, name: &EntityName) -> Option<&str> {
        self.roles.get(name).map(String::as_str)
    }

    /// The operator of an HEH.
    pub fn operator_of(&self, heh: &EntityName) -> Option<&EntityName> {
        self.operators.get(heh)
    }

    /// Every bidirectional link (HEH–operator links included), each pair once.
    pub fn links(&self) -> &BTreeSet<(EntityName, EntityName)> {
        &self.links
    }

    /// The groups.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The groups `name` is a member of: what its client's
    /// [`ClientConfig::groups`](ebadge_bus::ClientConfig::groups) must hold for it to hear them.
    ///
    /// ```
    /// use ebadge_admin::registry::Builder;
    /// use ebadge_bus::EntityName;
    /// let registry = Builder::new()
    ///     .entity("tso", None)
    ///     .entity("bsp1", None)
    ///     .group("bsps", "tso", ["bsp1"])
    ///     .build()?;
    /// let groups = registry.groups_of(&EntityName::new("bsp1")?);
    /// assert_eq!(groups, [EntityName::new("bsps")?]);
    /// assert!(registry.groups_of(&EntityName::new("tso")?).is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn groups_of(&self, name: &EntityName) -> Vec<EntityName> {
        self.groups
            .iter()
            .filter(|g| g.members.contains(name))
            .map(|g| g.name.clone())
            .collect()
    }
}

/// A registry assembled in code: the same TOML a person would write ([`Builder::to_toml`]), and
/// checked by the same rules when built ([`Builder::build`]).
///
/// ```
/// use ebadge_admin::registry::{Builder, QueueType};
/// let builder = Builder::new()
///     .queue_type(QueueType::Classic)
///     .entity("vpp", Some("vpp"))
///     .entity("ts", None)
///     .heh("heh-a", "vpp")
///     .link("vpp", "ts")
///     .group("vpps", "ts", ["vpp"]);
/// let registry = builder.build()?;
/// assert_eq!(registry.entities().count(), 3);
/// assert!(builder.to_toml().contains("[[heh]]"));
/// # Ok::<(), ebadge_admin::registry::RegistryError>(())
/// ```
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Builder {
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<BuiltOptions>,
    entity: Vec<BuiltEntity>,
    heh: Vec<BuiltHeh>,
    link: Vec<BuiltLink>,
    group: Vec<BuiltGroup>,
    #[serde(skip)]
    comment: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
struct BuiltOptions {
    queue_type: Option<QueueType>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct BuiltEntity {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct BuiltHeh {
    name: String,
    operator: String,
}

#[derive(Debug, Clone, serde::Serialize)]
struct BuiltLink {
    between: [String; 2],
}

#[derive(Debug, Clone, serde::Serialize)]
struct BuiltGroup {
    name: String,
    sender: String,
    members: Vec<String>,
}

impl Builder {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A comment on the first line of [`Self::to_toml`] (e.g. who wrote the file).
    pub fn comment(mut self, text: impl Into<String>) -> Self {
        self.comment = Some(text.into());
        self
    }

    /// The queue type of the inboxes (`[options] queue_type`).
    pub fn queue_type(mut self, queue_type: QueueType) -> Self {
        self.options.get_or_insert_default().queue_type = Some(queue_type);
        self
    }

    /// An entity (`[[entity]]`), with an optional role.
    pub fn entity(mut self, name: impl Into<String>, role: Option<&str>) -> Self {
        self.entity.push(BuiltEntity {
            name: name.into(),
            role: role.map(str::to_owned),
        });
        self
    }

    /// An HEH and its operator (`[[heh]]`).
    pub fn heh(mut self, name: impl Into<String>, operator: impl Into<String>) -> Self {
        self.heh.push(BuiltHeh {
            name: name.into(),
            operator: operator.into(),
        });
        self
    }

    /// A link between two entities (`[[link]]`).
    pub fn link(mut self, a: impl Into<String>, b: impl Into<String>) -> Self {
        self.link.push(BuiltLink {
            between: [a.into(), b.into()],
        });
        self
    }

    /// A group with its sender and members (`[[group]]`).
    pub fn group<M: Into<String>>(
        mut self,
        name: impl Into<String>,
        sender: impl Into<String>,
        members: impl IntoIterator<Item = M>,
    ) -> Self {
        self.group.push(BuiltGroup {
            name: name.into(),
            sender: sender.into(),
            members: members.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// The registry file's text.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a registry serializes");
        match &self.comment {
            Some(comment) => format!("# {comment}\n{body}"),
            None => body,
        }
    }

    /// The checked registry (errors name the line of [`Self::to_toml`]).
    pub fn build(&self) -> Result<Registry, RegistryError> {
        Registry::parse(&self.to_toml())
    }
}

fn ordered(a: EntityName, b: EntityName) -> (EntityName, EntityName) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        Registry::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = error("[[entity]]\nname = \"ts\"\n[[heh]]\nname = \"heh-a\"\noperator = \"tso\"\n");
        assert!(
            e.starts_with("line 5:") && e.contains("\"tso\" is not an entity"),
            "{e}"
        );
        let e = error("[[entity]]\nname = \"Bad_Name\"\n");
        assert!(
            e.starts_with("line 2:") && e.contains("1-63 characters"),
            "{e}"
        );
        let e = error("[[entity]]\nname = \"ts\"\n\n[[entity]]\nname = \"ts\"\n");
        assert!(
            e.starts_with("line 5:") && e.contains("defined twice (first on line 2)"),
            "{e}"
        );
        let e = error("[[entity]]\nname = \"ts\"\ncolour = 1\n");
        assert!(e.starts_with("line 3:") && e.contains("colour"), "{e}");
        let e = error("[[entity]]\nname = \"a\"\n[[entity]]\nname = \"a-b\"\n");
        assert!(e.starts_with("line 4:") && e.contains("overlap"), "{e}");
        let e = error("[[entity]]\nname = \"a\"\n[[link]]\nbetween = [\"a\"]\n");
        assert!(e.starts_with("line 4:") && e.contains("exactly two"), "{e}");
        let e = error(
            "[[entity]]\nname = \"a\"\n[[group]]\nname = \"a\"\nsender = \"a\"\nmembers = []\n",
        );
        assert!(
            e.starts_with("line 4:") && e.contains("name of an entity"),
            "{e}"
        );
    }

    #[test]
    fn links_are_bidirectional_and_deduplicated() {
        let r = Registry::parse(
            "[[entity]]\nname = \"ts\"\n[[entity]]\nname = \"vpp\"\n[[link]]\nbetween = [\"vpp\", \"ts\"]\n[[link]]\nbetween = [\"ts\", \"vpp\"]\n",
        )
        .unwrap();
        assert_eq!(r.links().len(), 1);
        assert_eq!(r.options.message_ttl_ms, 900_000);
    }
}
