use super::*;

#[test]
fn paths_name_resources_namespaces_and_subresources() {
    let t = parse_path("/api/v1/namespaces/shop/services/web/status").unwrap();
    assert_eq!(
        (
            t.resource.plural.as_str(),
            t.namespace.as_deref(),
            t.name.as_deref(),
            t.subresource.as_deref()
        ),
        ("services", Some("shop"), Some("web"), Some("status"))
    );
    let t = parse_path("/api/v1/namespaces/shop").unwrap();
    assert_eq!(
        (t.resource.plural.as_str(), t.namespace, t.name.as_deref()),
        ("namespaces", None, Some("shop"))
    );
    let t = parse_path("/apis/ironlb.io/v1beta1/ipaddresspools").unwrap();
    assert_eq!(
        (
            t.resource.group.as_str(),
            t.resource.plural.as_str(),
            t.name
        ),
        ("ironlb.io", "ipaddresspools", None)
    );
    let t = parse_path("/api/v1/nodes/n1").unwrap();
    assert_eq!(
        (t.resource.plural.as_str(), t.name.as_deref()),
        ("nodes", Some("n1"))
    );
}

#[test]
fn selectors_and_merge_patches() {
    let o = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "x"}}});
    assert!(labels_match(&o, Some("app=web,tier")));
    assert!(!labels_match(&o, Some("app!=web")));
    assert!(fields_match(&o, Some("metadata.name=a")));
    assert!(!fields_match(&o, Some("metadata.name=b")));
    let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
    merge(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
    assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
}

fn key(plural: &str, ns: &str, name: &str) -> Key {
    Key {
        resource: Resource {
            group: if plural == "services" {
                String::new()
            } else {
                "ironlb.io".into()
            },
            version: if plural == "services" {
                "v1".into()
            } else {
                "v1beta1".into()
            },
            plural: plural.into(),
        },
        namespace: Some(ns.into()),
        name: name.into(),
    }
}

fn owned_by(name: &str, uids: &[&str]) -> Value {
    let refs: Vec<Value> = uids
        .iter()
        .map(|u| json!({"apiVersion": "v1", "kind": "Service", "name": "x", "uid": u}))
        .collect();
    json!({"metadata": {"name": name, "ownerReferences": refs}})
}

#[test]
fn dependents_go_with_their_last_owner_and_theirs_with_them() {
    let mut s = Store::default();
    let uid = |v: &Value| v["metadata"]["uid"].as_str().unwrap().to_owned();
    let web = s
        .create(key("services", "shop", "web"), json!({"metadata": {}}))
        .unwrap();
    let db = s
        .create(key("services", "shop", "db"), json!({"metadata": {}}))
        .unwrap();
    let (web, db) = (uid(&web), uid(&db));
    let only_web = key("servicel2statuses", "shop", "a");
    let both = key("servicel2statuses", "shop", "b");
    let free = key("servicel2statuses", "shop", "c");
    let a = s.create(only_web.clone(), owned_by("a", &[&web])).unwrap();
    s.create(both.clone(), owned_by("b", &[&web, &db])).unwrap();
    s.create(free.clone(), json!({"metadata": {}})).unwrap();
    // A dependent of a dependent goes too.
    let grandchild = key("servicebgpstatuses", "shop", "d");
    s.create(grandchild.clone(), owned_by("d", &[&uid(&a)]))
        .unwrap();

    s.delete(&key("services", "shop", "web")).unwrap();
    assert!(!s.objects.contains_key(&only_web));
    assert!(!s.objects.contains_key(&grandchild));
    assert!(s.objects.contains_key(&both), "db still owns it");
    assert!(s.objects.contains_key(&free));
    assert!(s
        .log
        .iter()
        .any(|c| c.kind == "DELETED" && c.key == only_web));

    s.delete(&key("services", "shop", "db")).unwrap();
    assert!(!s.objects.contains_key(&both));
    assert!(s.objects.contains_key(&free));
    // Created for an owner already deleted: collected at once.
    s.create(
        key("servicel2statuses", "shop", "e"),
        owned_by("e", &[&web]),
    )
    .unwrap();
    assert!(!s
        .objects
        .contains_key(&key("servicel2statuses", "shop", "e")));
}

#[tokio::test]
async fn the_announcement_kinds_have_a_status_subresource_and_list_by_label() {
    let api = KubeApi::start().await;
    let http = reqwest::Client::new();
    let base = format!(
        "{}/apis/ironlb.io/v1beta1/namespaces/shop/servicel2statuses",
        api.url()
    );
    let apply = |url: String, body: Value| {
        http.patch(url)
            .header("content-type", "application/apply-patch+yaml")
            .body(body.to_string())
            .send()
    };
    let meta = json!({"apiVersion": "ironlb.io/v1beta1", "kind": "ServiceL2Status",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"ironlb.io/node": "node1"}},
        "spec": {}, "status": {"node": "ignored"}});
    let r = apply(format!("{base}/web-1"), meta.clone()).await.unwrap();
    assert!(r.status().is_success());
    let status = json!({"apiVersion": "ironlb.io/v1beta1", "kind": "ServiceL2Status",
        "status": {"node": "node1", "interfaces": [{"name": "eth0"}]}});
    let r = apply(format!("{base}/web-1/status"), status).await.unwrap();
    assert!(r.status().is_success());
    // A write to the object itself leaves the status alone.
    let mut again = meta;
    again["status"] = json!({"node": "nodeX"});
    apply(format!("{base}/web-1"), again).await.unwrap();
    let got = api
        .get(
            "ironlb.io/v1beta1",
            "ServiceL2Status",
            Some("shop"),
            "web-1",
        )
        .unwrap();
    assert_eq!(got["status"]["node"], "node1");
    assert_eq!(got["status"]["interfaces"][0]["name"], "eth0");
    let list: Value = http
        .get(format!(
            "{}/apis/ironlb.io/v1beta1/servicel2statuses?labelSelector=ironlb.io/node=node1",
            api.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["kind"], "ServiceL2StatusList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}
