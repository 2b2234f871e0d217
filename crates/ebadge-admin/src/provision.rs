//! Provisioning: the difference between what a registry implies and what a live broker has,
//! printed as a plan and applied through the management API. A second run finds nothing to do.

use crate::mgmt::{AdminClient, ApiError, RawApi, admin_client};
use crate::profile::Management;
use crate::registry::Registry;
use crate::state::{Item, Release, State, desired, desired_for, live_state, to_definitions};
use ebadge_bus::EntityName;
use ebadge_bus::conventions::{is_relay_binding, possible_owners};
use rabbitmq_http_client::commons::BindingDestinationType;
use rabbitmq_http_client::requests::BindingDeletionParams;
use serde::Serialize;
use std::collections::HashSet;

/// Items sent per definitions import: big registries go in several requests, well under the
/// management API's body size limit.
pub const IMPORT_CHUNK: usize = 5_000;

/// Queues migrated at the same time ([`crate::migrate`]).
pub const MIGRATIONS_AT_ONCE: usize = 16;

/// What provisioning will do (or did).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Items to create.
    pub add: Vec<String>,
    /// Items to change (shown as the new value).
    pub change: Vec<String>,
    /// Items to delete.
    pub remove: Vec<String>,
    #[serde(skip)]
    to_import: Vec<Item>,
    #[serde(skip)]
    to_delete: Vec<Item>,
    /// Queues that change type: (queue, new type), moved with their messages.
    #[serde(skip)]
    to_migrate: Vec<(String, String)>,
    /// Side queues of migrations that stopped half way.
    #[serde(skip)]
    to_finish: Vec<String>,
}

impl Plan {
    /// Compares the desired state with the live one. Resources provisioning does not own are
    /// left alone (see [`Item::is_managed`]).
    pub fn compute(desired: &State, live: &State, admin: &str) -> Plan {
        let mut plan = Plan::default();
        for (key, want) in desired {
            // A queue that changes type keeps its messages: migrated, not deleted.
            if let Some(Item::Queue {
                queue_type: was, ..
            }) = live.get(key)
                && let Item::Queue {
                    name,
                    queue_type,
                    durable: true,
                } = want
                && queue_type != was
            {
                plan.change.push(format!(
                    "{want}, was {was}: its messages are moved out and back (ebadge_admin::migrate)"
                ));
                plan.to_migrate.push((name.clone(), queue_type.clone()));
                continue;
            }
            match live.get(key) {
                None => {
                    plan.add.push(want.to_string());
                    plan.to_import.push(want.clone());
                }
                Some(have) if have != want => {
                    plan.change.push(want.to_string());
                    // Exchanges and queues cannot be redeclared with other properties.
                    if matches!(want, Item::Exchange { .. } | Item::Queue { .. }) {
                        plan.to_delete.push(have.clone());
                    }
                    plan.to_import.push(want.clone());
                }
                Some(_) => {}
            }
        }
        for (queue, side) in crate::migrate::leftover_side_queues(live) {
            if desired.contains_key(&Item::queue_key(&queue)) {
                plan.change.push(format!(
                    "queue {queue}: the messages a stopped migration left in {side} are moved back"
                ));
                plan.to_finish.push(side);
            }
        }
        for (key, have) in live {
            if !desired.contains_key(key) && have.is_managed(admin) {
                plan.remove.push(have.to_string());
                plan.to_delete.push(have.clone());
            }
        }
        // Deleting an exchange or queue deletes its bindings: the recreated one needs them back.
        let recreated: Vec<String> = plan
            .to_delete
            .iter()
            .filter_map(|i| match i {
                Item::Exchange { name, .. } | Item::Queue { name, .. }
                    if desired.contains_key(&i.key()) =>
                {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        for want in desired.values() {
            if let Item::Binding {
                source,
                destination,
                ..
            } = want
                && (recreated.contains(source) || recreated.contains(destination))
                && !plan.to_import.contains(want)
            {
                plan.to_import.push(want.clone());
            }
        }
        plan
    }

    /// The same plan, deleting only what belongs to the registry's own entities (managed
    /// resources in their namespaces `private-<name>-`: an incoming exchange, an inbox, the
    /// bindings into them; and relay bindings into their pair exchanges, see
    /// [`is_relay_destination`]): for adding a registry to a broker that holds others (the
    /// demo, the benchmarks). The registry is not the whole truth there, but it is about its
    /// entities, whose layout may have changed since the broker last saw them.
    pub fn keeping_others(mut self, registry: &Registry) -> Plan {
        let names: HashSet<&str> = registry.entities().map(EntityName::as_str).collect();
        let owned = |item: &Item| match item {
            Item::Exchange { name, .. } | Item::Queue { name, .. } => in_namespace_of(name, &names),
            Item::Binding {
                destination,
                destination_type,
                ..
            } if is_relay_binding(destination_type, destination) => destination
                .split_once("-to-")
                .is_some_and(|(writer, _)| names.contains(writer)),
            Item::Binding { destination, .. } => in_namespace_of(destination, &names),
            _ => false,
        };
        let imported = self.imported_keys();
        let redeclared = |item: &Item| imported.contains(&item.key());
        let kept: Vec<Item> = std::mem::take(&mut self.to_delete)
            .into_iter()
            .filter(|i| owned(i) || redeclared(i))
            .collect();
        let shown: HashSet<String> = kept
            .iter()
            .filter(|i| !redeclared(i))
            .map(Item::to_string)
            .collect();
        self.remove.retain(|line| shown.contains(line));
        self.to_delete = kept;
        self
    }

    /// The keys of the items to import: a deletion whose key is among them is a redeclaration.
    fn imported_keys(&self) -> HashSet<(u8, String)> {
        self.to_import.iter().map(Item::key).collect()
    }

    /// The deletions in the order [`Plan::apply_in_chunks`] makes them: the exchanges and
    /// queues declared again (before the imports), then the removals (after them), bindings
    /// first. A binding whose exchange or queue is removed is left out: it goes with them.
    fn deletions(&self) -> (Vec<&Item>, Vec<&Item>) {
        let imported = self.imported_keys();
        let (redeclared, mut removals): (Vec<&Item>, Vec<&Item>) = self
            .to_delete
            .iter()
            .partition(|i| imported.contains(&i.key()));
        // One request per exchange instead of one per binding too: moving 20,000 HEHs to one
        // hop deletes 20,000 exchanges, not 60,000 items.
        let (mut gone_exchanges, mut gone_queues) = (HashSet::new(), HashSet::new());
        for &item in &removals {
            match item {
                Item::Exchange { name, .. } => gone_exchanges.insert(name.as_str()),
                Item::Queue { name, .. } => gone_queues.insert(name.as_str()),
                _ => false,
            };
        }
        removals.retain(|i| match i {
            Item::Binding {
                source,
                destination,
                destination_type,
                ..
            } => {
                let gone = if destination_type == "queue" {
                    &gone_queues
                } else {
                    &gone_exchanges
                };
                !gone_exchanges.contains(source.as_str()) && !gone.contains(destination.as_str())
            }
            _ => true,
        });
        removals.sort_by_key(|i| match i {
            Item::Binding { .. } => 0,
            Item::Queue { .. } | Item::Exchange { .. } | Item::Policy { .. } => 1,
            Item::Permission { .. } => 2,
            Item::User { .. } => 3,
        });
        (redeclared, removals)
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.change.is_empty() && self.remove.is_empty()
    }

    /// The plan as text, one line per item: `+` create, `~` change, `-` delete.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        let tag = |sign: &'static str| move |s: &String| format!("{sign} {s}");
        self.add
            .iter()
            .map(tag("+"))
            .chain(self.change.iter().map(tag("~")))
            .chain(self.remove.iter().map(tag("-")))
    }

    /// Applies the plan through the management API of `management`: first the exchanges and
    /// queues that are declared again with other properties are deleted, then one definitions
    /// import per [`IMPORT_CHUNK`] items in key order (what an item needs is created before it),
    /// then what the registry no longer implies is deleted (bindings before what they bind),
    /// then the queues that change type are migrated, keeping their messages
    /// ([`crate::migrate`]). Removals come after imports so that a changed route is open
    /// before the old one closes: while both exist the broker delivers a message once (it
    /// routes to a set of queues), and there is never a moment when it routes to none.
    /// `progress` is called with (done, total) items.
    pub async fn apply(
        &self,
        management: &Management,
        progress: impl FnMut(usize, usize),
    ) -> Result<(), ApiError> {
        self.apply_in_chunks(management, IMPORT_CHUNK, progress)
            .await
    }

    /// [`Plan::apply`] with definitions imports of `chunk` items (tests use small ones to import
    /// a small registry in many requests, as a big one goes).
    pub async fn apply_in_chunks(
        &self,
        management: &Management,
        chunk: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(), ApiError> {
        let client = &admin_client(management);
        let api = RawApi::new(management);
        let (redeclared, removals) = self.deletions();
        let total = redeclared.len()
            + self.to_import.len()
            + removals.len()
            + self.to_migrate.len()
            + self.to_finish.len();
        let mut done = 0;
        for item in redeclared {
            delete(client, item).await?;
            done += 1;
            progress(done, total);
        }
        for chunk in self.to_import.chunks(chunk) {
            client
                .import_definitions(to_definitions(chunk))
                .await
                .map_err(|e| ApiError::new("importing definitions", e))?;
            done += chunk.len();
            progress(done, total);
        }
        for item in removals {
            delete(client, item).await?;
            done += 1;
            progress(done, total);
        }
        for side in &self.to_finish {
            crate::migrate::finish(&api, side).await?;
            done += 1;
            progress(done, total);
        }
        // A migration waits on the broker most of its second or so: several run side by side.
        let mut migrations = tokio::task::JoinSet::new();
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MIGRATIONS_AT_ONCE));
        for (queue, queue_type) in self.to_migrate.clone() {
            let (api, slots) = (api.clone(), slots.clone());
            migrations.spawn(async move {
                let _slot = slots.acquire_owned().await.expect("never closed");
                crate::migrate::change_type(&api, &queue, &queue_type).await
            });
        }
        while let Some(migrated) = migrations.join_next().await {
            migrated.map_err(|e| ApiError::new("migrating a queue", e))??;
            done += 1;
            progress(done, total);
        }
        Ok(())
    }
}

/// Whether `name` lies in the private namespace of one of `names` (one lookup per `-` in it, so
/// a plan for 20,000 entities stays linear).
fn in_namespace_of(name: &str, names: &HashSet<&str>) -> bool {
    possible_owners(name).any(|owner| names.contains(owner))
}

/// Computes the plan for `registry` against the live broker that `management` administers (the
/// number of its cluster nodes decides the queue type when the registry says `auto`).
pub async fn plan(
    client: &AdminClient,
    management: &Management,
    registry: &Registry,
) -> Result<Plan, ApiError> {
    let api = RawApi::new(management);
    let nodes = api.nodes().await?.len();
    let release = Release::of_broker(&api).await?;
    Ok(Plan::compute(
        &desired_for(registry, nodes, release),
        &live_state(client).await?,
        &management.user,
    ))
}

/// The RabbitMQ definitions document of everything the registry implies for a broker of
/// `cluster_nodes` nodes (for loading at boot).
pub fn export_definitions(registry: &Registry, cluster_nodes: usize) -> serde_json::Value {
    to_definitions(desired(registry, cluster_nodes).values())
}

/// Deletes one item through the management API.
pub(crate) async fn delete(client: &AdminClient, item: &Item) -> Result<(), ApiError> {
    let context = format!("deleting {item}");
    let result = match item {
        Item::User { name, .. } => client.delete_user(name, true).await,
        Item::Permission { user, .. } => client.clear_permissions("/", user, true).await,
        Item::Exchange { name, .. } => client.delete_exchange("/", name, true).await,
        Item::Queue { name, .. } => client.delete_queue("/", name, true).await,
        Item::Policy { name, .. } => client.delete_policy("/", name, true).await,
        Item::Binding {
            source,
            destination,
            destination_type,
            routing_key,
        } if is_relay_binding(destination_type, destination) => {
            let found = client
                .list_exchange_bindings_with_destination("/", destination)
                .await
                .map_err(|e| ApiError::new(&context, e))?;
            let mut matching = found;
            matching.retain(|b| b.source == *source && b.routing_key == *routing_key);
            return delete_bindings(client, &matching).await;
        }
        Item::Binding {
            source,
            destination,
            destination_type,
            routing_key,
        } => {
            let destination_type = if destination_type == "queue" {
                BindingDestinationType::Queue
            } else {
                BindingDestinationType::Exchange
            };
            client
                .delete_binding(
                    &BindingDeletionParams {
                        virtual_host: "/",
                        source,
                        destination,
                        destination_type,
                        routing_key,
                        arguments: None,
                    },
                    true,
                )
                .await
                .map(|_| ())
        }
    };
    result.map_err(|e| ApiError::new(context, e))
}

/// Deletes `bindings` as the broker listed them, arguments included: a relay binding made with
/// arguments (which our items do not carry) must not outlive the plan or the revocation that
/// removes it.
pub(crate) async fn delete_bindings(
    client: &AdminClient,
    bindings: &[rabbitmq_http_client::responses::BindingInfo],
) -> Result<(), ApiError> {
    for b in bindings {
        client
            .delete_binding(&BindingDeletionParams::from_binding_info(b), true)
            .await
            .map_err(|e| {
                let what = format!(
                    "binding {} -> {} [{}]",
                    b.source, b.destination, b.routing_key
                );
                ApiError::new(format!("deleting {what}"), e)
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, queue_type: &str) -> Item {
        Item::Queue {
            name: name.into(),
            durable: true,
            queue_type: queue_type.into(),
        }
    }

    fn state(items: &[Item]) -> State {
        items.iter().map(|i| (i.key(), i.clone())).collect()
    }

    #[test]
    fn a_queue_that_changes_type_is_migrated_not_deleted() {
        let desired = state(&[queue("private-h-inbox", "classic")]);
        let live = state(&[queue("private-h-inbox", "quorum")]);
        let plan = Plan::compute(&desired, &live, "ebadge-admin");
        assert_eq!(
            plan.change,
            [
                "queue private-h-inbox (classic, durable), was quorum: its messages are moved out and back (ebadge_admin::migrate)"
            ]
        );
        assert!(plan.to_delete.is_empty() && plan.to_import.is_empty());
        assert_eq!(
            plan.to_migrate,
            [("private-h-inbox".into(), "classic".into())]
        );
    }

    #[test]
    fn a_side_queue_left_by_a_stopped_migration_is_finished() {
        let desired = state(&[queue("private-h-inbox", "classic")]);
        let live = state(&[
            queue("private-h-inbox", "classic"),
            queue("private-h-inbox-migrating", "classic"),
        ]);
        let plan = Plan::compute(&desired, &live, "ebadge-admin");
        assert_eq!(plan.to_finish, ["private-h-inbox-migrating"]);
        assert!(
            plan.remove.is_empty(),
            "the side queue is not deleted with its messages"
        );
        assert!(!plan.is_empty(), "there is something to do");
    }

    /// An operator `ts` and its HEH `heh-a`.
    fn ts_and_heh_a() -> crate::registry::Registry {
        crate::registry::Registry::parse(
            "[[entity]]\nname = \"ts\"\n[[heh]]\nname = \"heh-a\"\noperator = \"ts\"\n",
        )
        .unwrap()
    }

    #[test]
    fn an_hehs_old_incoming_exchange_is_deleted_with_its_bindings_in_one_request() {
        let registry = ts_and_heh_a();
        let want = desired(&registry, 1);
        let binding = |source: &str, destination: &str, destination_type: &str| Item::Binding {
            source: source.into(),
            destination: destination.into(),
            destination_type: destination_type.into(),
            routing_key: "#".into(),
        };
        let old_exchange = Item::Exchange {
            name: "private-heh-a-in".into(),
            kind: "topic".into(),
            durable: true,
        };
        // The layout before one hop, and a binding that stays out of the exchange's way.
        let mut live = want.clone();
        live.remove(&binding("ts-to-heh-a", "private-heh-a-inbox", "queue").key());
        for item in [
            old_exchange.clone(),
            binding("ts-to-heh-a", "private-heh-a-in", "exchange"),
            binding("private-heh-a-in", "private-heh-a-inbox", "queue"),
            binding("heh-a-to-ts", "private-heh-a-inbox", "queue"),
        ] {
            live.insert(item.key(), item);
        }
        let plan = Plan::compute(&want, &live, "ebadge-admin");
        assert_eq!(
            plan.remove.len(),
            4,
            "the plan shows every item: {:?}",
            plan.remove
        );
        let (redeclared, removals) = plan.deletions();
        assert!(redeclared.is_empty());
        assert_eq!(
            removals,
            [
                &binding("heh-a-to-ts", "private-heh-a-inbox", "queue"),
                &old_exchange
            ]
        );
    }

    #[test]
    fn keeping_others_still_moves_the_registrys_own_hehs_to_one_hop() {
        let registry = ts_and_heh_a();
        let exchange = |name: &str| Item::Exchange {
            name: name.into(),
            kind: "topic".into(),
            durable: true,
        };
        let mut live = desired(&registry, 1);
        // The layout before one hop for heh-a, and an HEH of another registry.
        for item in [exchange("private-heh-a-in"), exchange("private-heh-z-in")] {
            live.insert(item.key(), item);
        }
        let plan =
            Plan::compute(&desired(&registry, 1), &live, "ebadge-admin").keeping_others(&registry);
        assert_eq!(plan.remove, ["exchange private-heh-a-in (topic, durable)"]);
        assert_eq!(plan.to_delete, [exchange("private-heh-a-in")]);
    }

    #[test]
    fn a_relay_binding_into_a_pair_exchange_is_removed_whatever_its_key() {
        let registry = crate::registry::Registry::parse(
            "[[entity]]\nname = \"ts\"\n[[entity]]\nname = \"vpp\"\n[[entity]]\nname = \"mkt\"\n\
             [[link]]\nbetween = [\"ts\", \"vpp\"]\n[[link]]\nbetween = [\"vpp\", \"mkt\"]\n",
        )
        .unwrap();
        let want = desired(&registry, 1);
        let relay = |source: &str, destination: &str, key: &str| Item::Binding {
            source: source.into(),
            destination: destination.into(),
            destination_type: "exchange".into(),
            routing_key: key.into(),
        };
        let relays = [
            relay("ts-to-vpp", "vpp-to-mkt", "#"),
            relay("private-vpp-in", "vpp-to-mkt", "report.*"),
            // Of an entity another registry owns: the whole truth removes it, keeping others not.
            relay("ts-to-other", "other-to-mkt", "#"),
        ];
        let mut live = want.clone();
        for item in &relays {
            live.insert(item.key(), item.clone());
        }
        // A binding of vpp's own between its private resources stays: its business.
        let own = Item::Binding {
            source: "private-vpp-in".into(),
            destination: "private-vpp-tap-1".into(),
            destination_type: "queue".into(),
            routing_key: "#".into(),
        };
        live.insert(own.key(), own);
        let plan = Plan::compute(&want, &live, "ebadge-admin");
        let mut removed = plan.to_delete.clone();
        removed.sort();
        let mut expected = relays.to_vec();
        expected.sort();
        assert_eq!(removed, expected, "{:?}", plan.remove);
        let kept = plan.keeping_others(&registry);
        assert_eq!(kept.to_delete.len(), 2, "{:?}", kept.remove);
        assert!(!kept.to_delete.contains(&relays[2]));
    }

    #[test]
    fn on_an_empty_broker_the_policy_comes_first_and_bindings_last() {
        let registry = ts_and_heh_a();
        let plan = Plan::compute(&desired(&registry, 1), &State::new(), "ebadge-admin");
        let kinds: Vec<u8> = plan.to_import.iter().map(|i| i.key().0).collect();
        assert!(
            matches!(plan.to_import.first(), Some(Item::Policy { .. })),
            "queues are created under the policy, not updated one by one after it: {:?}",
            plan.add
        );
        assert!(
            kinds.is_sorted(),
            "each item after what it needs: {kinds:?}"
        );
        assert!(matches!(plan.to_import.last(), Some(Item::Binding { .. })));
    }
}
