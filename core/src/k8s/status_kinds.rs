//! The announcement status kinds (`ironlb.io/v1beta1`), in the shape of MetalLB's
//! `ServiceL2Status` and `ServiceBGPStatus`: one object per Service and announcing node, in the
//! Service's namespace, written by the controller leader from what it told each node to
//! announce (`reconciler/announcements.rs`). They are reports, not configuration: nobody writes
//! a spec.

// Each `printcolumn(...)` of a `#[kube]` attribute repeats `type_ = ...`: clippy takes the
// repeats for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which node answers for a Service's addresses in Layer 2 mode, and on which interfaces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    namespaced,
    status = "ServiceL2StatusStatus",
    category = "ironlb",
    doc = "Which node answers ARP and NDP for a Service's addresses; written by the controller leader.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    ),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".status.interfaces[*].name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusSpec {}

/// What a ServiceL2Status reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The node answering for the Service's addresses.
    #[serde(default)]
    pub node: String,
    /// The Service's name.
    #[serde(default)]
    pub service_name: String,
    /// The Service's namespace.
    #[serde(default)]
    pub service_namespace: String,
    /// The interfaces the node answers on; empty: every interface it may answer on.
    #[serde(default)]
    pub interfaces: Vec<InterfaceInfo>,
}

/// One interface a node answers on.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct InterfaceInfo {
    /// The interface's name (`eth0`).
    pub name: String,
}

/// Which node announces a Service's addresses over BGP, and to which peers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    plural = "servicebgpstatuses",
    namespaced,
    status = "ServiceBGPStatusStatus",
    category = "ironlb",
    doc = "Which node announces a Service's addresses to which BGP peers; written by the controller leader.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".status.peers"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusSpec {}

/// What a ServiceBGPStatus reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusStatus {
    /// The node announcing the Service's addresses.
    #[serde(default)]
    pub node: String,
    /// The Service's name.
    #[serde(default)]
    pub service_name: String,
    /// The Service's namespace.
    #[serde(default)]
    pub service_namespace: String,
    /// The BGPPeers (by name) the node announces them to.
    #[serde(default)]
    pub peers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{CustomResourceExt, Resource};

    #[test]
    fn both_kinds_are_namespaced_with_a_status_and_metallbs_columns() {
        assert_eq!(ServiceL2Status::plural(&()), "servicel2statuses");
        assert_eq!(ServiceBGPStatus::plural(&()), "servicebgpstatuses");
        for (crd, last) in [
            (ServiceL2Status::crd(), "Interfaces"),
            (ServiceBGPStatus::crd(), "Peers"),
        ] {
            assert_eq!(crd.spec.scope, "Namespaced");
            let v = &crd.spec.versions[0];
            assert!(v.subresources.as_ref().is_some_and(|s| s.status.is_some()));
            let columns: Vec<&str> = v
                .additional_printer_columns
                .as_ref()
                .map(|c| c.iter().map(|c| c.name.as_str()).collect())
                .unwrap_or_default();
            assert_eq!(
                columns,
                ["Node", "Service Name", "Service Namespace", last, "Age"]
            );
        }
        let status = serde_json::to_value(ServiceL2StatusStatus {
            node: "n".into(),
            service_name: "web".into(),
            service_namespace: "shop".into(),
            interfaces: vec![InterfaceInfo {
                name: "eth0".into(),
            }],
        })
        .unwrap_or_default();
        assert_eq!(
            status,
            serde_json::json!({"node": "n", "serviceName": "web", "serviceNamespace": "shop", "interfaces": [{"name": "eth0"}]})
        );
    }
}
